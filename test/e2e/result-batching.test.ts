import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { status, type sendUnaryData, type ServerUnaryCall, type ServiceError } from '@grpc/grpc-js';
import pino from 'pino';
import { TaskFinished } from '../../gen/baton/v1/agent_gateway_service';
import { NodeResult, NodeState, Run, RunState } from '../../gen/baton/v1/run';
import { ResultsServiceClient, ResultsServiceService, type RecordNodeResultsRequest, type RecordNodeResultsResponse } from '../../gen/baton/v1/results_service';
import { SchedulerServiceClient } from '../../gen/baton/v1/scheduler_service';
import { freePort } from '../../lib/free-port';
import { makeClient, unary } from '../../lib/grpc-client';
import { startServer, type RunningServer } from '../../lib/grpc-server';
import { createLogger } from '../../lib/logger';
import { closeRedis, createRedis } from '../../lib/redis';
import { newTaskId } from '../../lib/task-id';
import { createResultsService } from '../../services/results/results-service';
import { RESULT_BATCH_LINGER_MS, ResultBatcher, type ResultBatcherOptions } from '../../services/scheduler/result-batcher';
import { RunTracker } from '../../services/scheduler/run-tracker';
import { startScheduler, type RunningScheduler } from '../../services/scheduler/scheduler-server';
import { TestAgent } from '../helpers/test-agent';
import { uniquePrefix, useRedisServer } from '../helpers/redis';
import { waitFor } from '../helpers/wait';
import { watchedNodeStates } from '../helpers/watch-run';

/**
 * How the scheduler records agents' results and heartbeats at scale: a real results service on
 * 127.0.0.1 (in this process, so that a counter on its RecordNodeResults handler sees every call
 * it serves), a real redis-server, the scheduler in-process and test agents speaking the agent
 * protocol over real streams.
 */

const redis = useRedisServer();
const silent = createLogger('test', 'silent');

let cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

/** One RecordNodeResults call as the results service served it. */
interface ServedCall {
  hosts: string[];
  states: NodeState[];
  code: status;
}

/** A real results service whose RecordNodeResults calls are counted; it can be stopped and started again on its port. */
class CountingResultsService {
  readonly calls: ServedCall[] = [];
  private server: RunningServer | undefined;
  private stopService: () => Promise<void> = () => Promise.resolve();

  private constructor(
    readonly address: string,
    private readonly prefix: string,
  ) {}

  static async start(): Promise<CountingResultsService> {
    const s = new CountingResultsService(`127.0.0.1:${await freePort()}`, uniquePrefix());
    await s.restart();
    cleanups.push(() => s.stop());
    return s;
  }

  /** Starts the service on its address (again), over the same Redis keys. */
  async restart(): Promise<void> {
    const client = createRedis({ url: redis.url, log: silent, connectionName: 'baton-results' });
    const service = createResultsService({ redis: client, keyPrefix: this.prefix, log: silent });
    const real = service.implementation;
    const recordNodeResults = (
      call: ServerUnaryCall<RecordNodeResultsRequest, RecordNodeResultsResponse>,
      callback: sendUnaryData<RecordNodeResultsResponse>,
    ): void => {
      const served: ServedCall = { hosts: call.request.results.map((r) => r.host), states: call.request.results.map((r) => r.state), code: status.OK };
      this.calls.push(served);
      real.recordNodeResults(call, (err: Partial<ServiceError> | null, res?: RecordNodeResultsResponse | null) => {
        served.code = err?.code ?? status.OK;
        callback(err, res);
      });
    };
    this.server = await startServer({
      listen: this.address,
      services: [{ name: 'baton.v1.ResultsService', definition: ResultsServiceService, implementation: { ...real, recordNodeResults } }],
      log: silent,
      drainGraceMs: 1_000,
    });
    this.stopService = async () => {
      service.retention.stop();
      await closeRedis(client);
    };
  }

  /** Stops the service; calls fail with UNAVAILABLE until `restart`. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await server.drain();
    await this.stopService();
  }
}

/** A scheduler in this process, a client of the results service, and a way to connect agents. */
async function start(results: CountingResultsService, options: { heartbeatIntervalS?: number; resultBatching?: ResultBatcherOptions; log?: pino.Logger } = {}) {
  const scheduler: RunningScheduler = await startScheduler({
    listen: '127.0.0.1:0',
    log: options.log ?? createLogger('scheduler', 'silent'),
    redisUrl: redis.url,
    keyPrefix: uniquePrefix(),
    metadataAddress: `127.0.0.1:${await freePort()}`,
    resultsAddress: results.address,
    heartbeatIntervalS: options.heartbeatIntervalS ?? 10,
    drainGraceMs: 1_000,
    resultBatching: options.resultBatching,
  });
  const resultsClient = makeClient(ResultsServiceClient, results.address);
  const schedulerClient = makeClient(SchedulerServiceClient, scheduler.address);
  const agents: TestAgent[] = [];
  cleanups.push(async () => {
    for (const a of agents) a.close();
    resultsClient.close();
    schedulerClient.close();
    await scheduler.stop();
  });
  return {
    scheduler,
    resultsClient,
    schedulerClient,
    /** Connects one agent per identity, all at once. */
    connect: async (identities: string[]) => {
      const connected = await Promise.all(
        identities.map((identity) => TestAgent.connect(scheduler.address, { identity, agents: ['bolt_tasks'], version: '0.1.0' })),
      );
      agents.push(...connected);
      return connected;
    },
    createRun: async (nodes: string[]): Promise<Run> => {
      const run = Run.fromPartial({
        taskId: newTaskId(),
        task: 'acme::deploy',
        environment: 'production',
        caller: 'user=alice',
        nodes,
        inputJson: '{}',
        state: RunState.RUN_STATE_RUNNING,
      });
      return (await unary(resultsClient, resultsClient.createRun, { run })).run!;
    },
    statesOf: async (taskId: string): Promise<Map<string, NodeState>> => {
      const s = await unary(resultsClient, resultsClient.getRunStatus, { taskId });
      return new Map(s.items.map((r) => [r.host, r.state]));
    },
  };
}

function names(n: number, prefix = 'n'): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(3, '0')}`);
}

function finishedResult(identity: string, taskId: string): NodeResult {
  return NodeResult.fromPartial({
    host: identity,
    taskId,
    state: NodeState.NODE_STATE_SUCCEEDED,
    exitcode: 0,
    completed: true,
    stdout: '{"ok":true}',
    value: { ok: true },
    runtime: 0.01,
    startTime: new Date(),
  });
}

function finishedMessage(agent: TestAgent, identity: string, taskId: string): void {
  agent.send({ $case: 'taskFinished', value: TaskFinished.fromPartial({ result: finishedResult(identity, taskId) }) });
}

/** `p`, or a failure naming `what` after `ms`. */
function within<T>(what: string, p: Promise<T>, ms = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Final node results in the run's event log, per host. */
async function finalEventsPerHost(client: ResultsServiceClient, taskId: string): Promise<Map<string, number>> {
  const stream = client.watchRunEvents({ taskId, resumeToken: '', follow: false });
  const counts = new Map<string, number>();
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (m: { event?: { event?: { $case: string; value: NodeResult } } }) => {
      const e = m.event?.event;
      if (e?.$case === 'nodeResult' && e.value.state === NodeState.NODE_STATE_SUCCEEDED) counts.set(e.value.host, (counts.get(e.value.host) ?? 0) + 1);
    });
    stream.on('error', reject);
    stream.on('end', resolve);
  });
  return counts;
}

describe('result batching', () => {
  it('records the results of many nodes of one run in few RecordNodeResults calls, each node in order', async () => {
    const results = await CountingResultsService.start();
    const h = await start(results);
    const nodes = names(200);
    const agents = await h.connect(nodes);
    const run = await h.createRun(nodes);
    agents.forEach((a) => a.send({ $case: 'taskStarted', value: { taskId: run.taskId, startTime: new Date() } }));
    agents.forEach((a, i) => finishedMessage(a, nodes[i], run.taskId));
    await Promise.all(agents.map(async (a) => assert.equal((await a.next('resultAck', 20_000)).taskId, run.taskId)));

    const states = await h.statesOf(run.taskId);
    assert.equal([...states.values()].filter((s) => s === NodeState.NODE_STATE_SUCCEEDED).length, 200);
    // One call per report would be 400 calls.
    assert.ok(results.calls.length <= 40, `${results.calls.length} RecordNodeResults calls for 400 reports of 200 nodes`);
    const finalSeen = new Set<string>();
    for (const call of results.calls) {
      assert.equal(new Set(call.hosts).size, call.hosts.length, 'a node appears at most once per call');
      call.hosts.forEach((host, i) => {
        assert.ok(!finalSeen.has(host), `${host} was sent again after its final result`);
        if (call.states[i] === NodeState.NODE_STATE_SUCCEEDED) finalSeen.add(host);
      });
    }
    assert.equal(finalSeen.size, 200);
  });

  it("gathers results that arrive spread out, as a fleet's tasks end, into calls of many results each", async () => {
    const results = await CountingResultsService.start();
    const h = await start(results);
    const nodes = names(100);
    const agents = await h.connect(nodes);
    const run = await h.createRun(nodes);
    const startedMs = Date.now();
    for (let i = 0; i < agents.length; i++) {
      finishedMessage(agents[i], nodes[i], run.taskId);
      // Paced, as tasks that end one after the other: each result would go alone if a batch did not wait.
      await new Promise((resolve) => setTimeout(resolve, 4));
    }
    const spreadMs = Date.now() - startedMs;
    await Promise.all(agents.map(async (a) => assert.equal((await a.next('resultAck', 20_000)).taskId, run.taskId)));

    const calls = results.calls.length;
    assert.equal(results.calls.flatMap((c) => c.hosts).length, 100, 'every result was sent once');
    // One call per linger (RESULT_BATCH_LINGER_MS) while results keep coming, a few more where a
    // batch in flight held a node back: well under one call per 20 ms, where a linger of a few
    // ms would send them one or two at a time.
    assert.ok(
      calls <= Math.ceil(spreadMs / 20) + 4,
      `${calls} RecordNodeResults calls for 100 results over ${spreadMs} ms (linger ${RESULT_BATCH_LINGER_MS} ms)`,
    );
  });

  it("sends a tracked run's results without the linger once every node still to report has one waiting: a run's last results wait for nothing", async () => {
    const results = await CountingResultsService.start();
    const h = await start(results);
    const tracker = new RunTracker();
    // A linger far longer than the test: a result that waited for it would fail the test.
    const batcher = new ResultBatcher(h.resultsClient, { lingerMs: 600_000 }, (taskId) => tracker.get(taskId)?.pendingCount);
    cleanups.push(() => batcher.flush()); // what still lingers after a failure, so that nothing outlives the test
    const pair = await h.createRun(['a', 'b']);
    tracker.track(pair.taskId, ['a', 'b']);
    const first = batcher.record(finishedResult('a', pair.taskId));
    // b is still to report: a waits for it, and both go in one call.
    const second = batcher.record(finishedResult('b', pair.taskId));
    assert.deepEqual(await within('the results of both nodes', Promise.all([first, second])), [{ stored: true }, { stored: true }]);
    assert.deepEqual(
      results.calls.map((c) => c.hosts),
      [['a', 'b']],
    );

    const single = await h.createRun(['c']);
    tracker.track(single.taskId, ['c']);
    assert.deepEqual(await within('the result of a one-node run', batcher.record(finishedResult('c', single.taskId))), { stored: true });
    const status = await unary(h.resultsClient, h.resultsClient.getRunStatus, { taskId: single.taskId });
    assert.equal(status.run?.state, RunState.RUN_STATE_SUCCEEDED);
  });

  it('records a task that ends within the progress hold once, as its final result: its RUNNING is never written', async () => {
    const results = await CountingResultsService.start();
    // A hold far longer than the test: a final result that waited for it would fail the test.
    const h = await start(results, { resultBatching: { progressHoldMs: 600_000 } });
    const nodes = names(20);
    const agents = await h.connect(nodes);
    const run = await h.createRun(nodes);
    // Each node's result of another run, acknowledged after its TaskStarted was taken in: its
    // batch went after the RUNNINGs' batch would have without the hold, so that the TaskFinished
    // sent next can only replace a RUNNING that was held.
    const pacer = await h.createRun(nodes);
    agents.forEach((a, i) => {
      a.send({ $case: 'taskStarted', value: { taskId: run.taskId, startTime: new Date() } });
      finishedMessage(a, nodes[i], pacer.taskId);
    });
    await Promise.all(agents.map(async (a) => assert.equal((await a.next('resultAck', 20_000)).taskId, pacer.taskId)));
    agents.forEach((a, i) => finishedMessage(a, nodes[i], run.taskId));
    await Promise.all(agents.map(async (a) => assert.equal((await a.next('resultAck', 20_000)).taskId, run.taskId)));

    const sent = results.calls.flatMap((c) => c.states);
    assert.equal(sent.length, 40, 'one result per node and run reached the results service');
    assert.ok(
      sent.every((s) => s === NodeState.NODE_STATE_SUCCEEDED),
      'no RUNNING was sent',
    );
    assert.deepEqual(
      (await watchedNodeStates(h.schedulerClient, run.taskId)).sort(),
      nodes.map((n) => [n, NodeState.NODE_STATE_SUCCEEDED]),
      'WatchRun shows each node once, final: no RUNNING was stored',
    );
  });

  it('shows a task still running after the progress hold as RUNNING, then its final result', async () => {
    const results = await CountingResultsService.start();
    const holdMs = 300;
    const h = await start(results, { resultBatching: { progressHoldMs: holdMs } });
    const [agent] = await h.connect(['slow']);
    const run = await h.createRun(['slow', 'other']);
    const sentAt = Date.now();
    agent.send({ $case: 'taskStarted', value: { taskId: run.taskId, startTime: new Date() } });
    await waitFor('the node to show RUNNING', async () => (await h.statesOf(run.taskId)).get('slow') === NodeState.NODE_STATE_RUNNING, 20_000);
    assert.ok(Date.now() - sentAt >= holdMs, 'RUNNING was recorded once the hold had passed');
    finishedMessage(agent, 'slow', run.taskId);
    assert.equal((await agent.next('resultAck', 20_000)).taskId, run.taskId);
    assert.equal((await h.statesOf(run.taskId)).get('slow'), NodeState.NODE_STATE_SUCCEEDED);

    const [other] = await h.connect(['other']);
    finishedMessage(other, 'other', run.taskId);
    assert.equal((await other.next('resultAck', 20_000)).taskId, run.taskId);
    assert.deepEqual(await watchedNodeStates(h.schedulerClient, run.taskId), [
      ['slow', NodeState.NODE_STATE_RUNNING],
      ['slow', NodeState.NODE_STATE_SUCCEEDED],
      ['other', NodeState.NODE_STATE_SUCCEEDED],
    ]);
  });

  it('loses no result while the results service is down, holding no more than its bound, and records each once after it is back', async () => {
    const results = await CountingResultsService.start();
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(chunk.toString()), done()) }));
    // At most 5 results held: the other 15 are turned away at once and tried again by their sessions.
    const h = await start(results, { log, resultBatching: { maxQueued: 5 } });
    const nodes = names(20);
    const agents = await h.connect(nodes);
    const run = await h.createRun(nodes);
    await results.stop();

    agents.forEach((a, i) => finishedMessage(a, nodes[i], run.taskId));
    await waitFor('the scheduler to fail to record the results', () => lines.some((l) => l.includes('could not record a result')), 20_000);
    assert.ok(
      lines.some((l) => l.includes('results wait for the results service already')),
      'results beyond the bound are turned away',
    );
    assert.ok(
      agents.every((a) => !a.received.some((m) => m.message?.$case === 'resultAck')),
      'no result is acknowledged before it is stored',
    );

    await results.restart();
    await Promise.all(agents.map(async (a) => assert.equal((await a.next('resultAck', 30_000)).taskId, run.taskId)));
    const states = await h.statesOf(run.taskId);
    assert.deepEqual([...states.values()].filter((s) => s === NodeState.NODE_STATE_SUCCEEDED).length, 20);
    const events = await finalEventsPerHost(h.resultsClient, run.taskId);
    assert.deepEqual(
      [...events.entries()].sort(),
      nodes.map((n) => [n, 1]),
    );
    const stored = await unary(h.resultsClient, h.resultsClient.getRunStatus, { taskId: run.taskId });
    assert.equal(stored.stats?.success, 20);
    assert.equal(stored.run?.state, RunState.RUN_STATE_SUCCEEDED);
  });

  it('stores the other results of a batch in which one result is refused for good, and acknowledges the refused one', async () => {
    const results = await CountingResultsService.start();
    // A long linger puts every result in one batch.
    const h = await start(results, { resultBatching: { lingerMs: 300 } });
    const nodes = names(30);
    const agents = await h.connect([...nodes, 'stranger']);
    const run = await h.createRun(nodes);
    agents.forEach((a, i) => finishedMessage(a, i < nodes.length ? nodes[i] : 'stranger', run.taskId));
    await Promise.all(agents.map(async (a) => assert.equal((await a.next('resultAck', 20_000)).taskId, run.taskId)));

    const states = await h.statesOf(run.taskId);
    assert.deepEqual([...states.keys()].sort(), nodes);
    assert.ok([...states.values()].every((s) => s === NodeState.NODE_STATE_SUCCEEDED));
    const first = results.calls.find((c) => c.hosts.includes('stranger'));
    assert.ok(
      first && first.hosts.length > 1 && first.code === status.INVALID_ARGUMENT,
      'the refused result came in a batch with others, which the service refused',
    );
    const events = await finalEventsPerHost(h.resultsClient, run.taskId);
    assert.equal(events.size, 30);
    assert.ok([...events.values()].every((n) => n === 1));
  });
});
