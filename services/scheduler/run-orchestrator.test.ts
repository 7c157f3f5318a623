import type { RunCommand } from '../../gen/baton/v1/agent_gateway_service';
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { NodeResult, NodeState, RunState } from '../../gen/baton/v1/run';
import { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { SchedulerServiceClient, RunTaskRequest, type RunTaskResponse, type WatchRunResponse } from '../../gen/baton/v1/scheduler_service';
import type { RunEvent } from '../../gen/baton/v1/run';
import { startChild, type StartedChild } from '../../lib/child-process';
import { readServiceError } from '../../lib/errors';
import { makeClient, unary } from '../../lib/grpc-client';
import pino from 'pino';
import { createLogger, type Logger } from '../../lib/logger';
import { LISTENING_LINE } from '../../lib/main';
import { packageRoot } from '../../lib/package-root';
import { RedisKeys } from '../../lib/redis';
import { newTaskId } from '../../lib/task-id';
import { uniquePrefix, useRedisServer } from '../../test/helpers/redis';
import { waitFor } from '../../test/helpers/wait';
import { runRecordDeadlineMs } from './node-results';
import { RunStateStore } from './run-state';
import { startScheduler, type RunningScheduler } from './scheduler-server';
import { TestAgent } from '../../test/helpers/test-agent';

/**
 * RunTask end to end inside the scheduler: real baton-metadata and baton-results processes, a
 * real redis-server, the scheduler in-process, and test agents speaking the agent protocol.
 */

const redis = useRedisServer();
const log = createLogger('scheduler', 'silent');
const children: StartedChild[] = [];
let metadataAddress = '';
let resultsAddress = '';
/** The results service's process, stopped (SIGSTOP) by a test that needs a state change held. */
let resultsChild: StartedChild | undefined;
let results: ResultsServiceClient;

/** One tiny task: `acme::restart` with a required Enum, a sensitive String and a defaulted String. */
function writeFixtureModules(): string {
  const root = mkdtempSync(join(tmpdir(), 'baton-scheduler-'));
  const tasks = join(root, 'production', 'modules', 'acme', 'tasks');
  mkdirSync(tasks, { recursive: true });
  writeFileSync(join(tasks, 'restart.sh'), '#!/bin/sh\necho "{}"\n', { mode: 0o755 });
  writeFileSync(
    join(tasks, 'restart.json'),
    JSON.stringify({
      description: 'Restarts a service',
      supports_noop: false,
      parameters: {
        action: { type: 'Enum[start, stop]' },
        password: { type: 'String[1]', sensitive: true },
        service: { type: 'String', default: 'httpd' },
      },
    }),
  );
  return root;
}

async function startService(piece: 'metadata' | 'results', args: string[]): Promise<string> {
  const main = join(packageRoot(), 'dist', 'services', piece, 'main.js');
  const child = await startChild(process.execPath, [main, '--insecure', '--listen', '127.0.0.1:0', '--log-level', 'warn', ...args], { ready: LISTENING_LINE });
  children.push(child);
  if (piece === 'results') resultsChild = child;
  return LISTENING_LINE.exec(child.readyLine)![1];
}

before(async () => {
  metadataAddress = await startService('metadata', ['--environmentpath', writeFixtureModules()]);
  resultsAddress = await startService('results', ['--redis-url', redis.url, '--key-prefix', uniquePrefix()]);
  results = makeClient(ResultsServiceClient, resultsAddress);
});

after(async () => {
  results.close();
  await Promise.all(children.map((c) => c.stop()));
});

let cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

interface Harness {
  scheduler: RunningScheduler;
  client: SchedulerServiceClient;
  run(req: Partial<RunTaskRequest>, caller?: string): Promise<RunTaskResponse>;
  agent(identity: string): Promise<TestAgent>;
  cancel(taskId: string): Promise<string[]>;
}

/** Starts a scheduler; two started with the same `keyPrefix` are replicas sharing one Redis. */
async function start(downloadTimeoutS = 10, keyPrefix = uniquePrefix(), more: { runLeaseS?: number; log?: Logger } = {}): Promise<Harness> {
  const scheduler = await startScheduler({
    listen: '127.0.0.1:0',
    log: more.log ?? log,
    redisUrl: redis.url,
    keyPrefix,
    metadataAddress,
    resultsAddress,
    heartbeatIntervalS: 10,
    downloadTimeoutS,
    runLeaseS: more.runLeaseS,
    drainGraceMs: 1_000,
  });
  const client = makeClient(SchedulerServiceClient, scheduler.address);
  const agents: TestAgent[] = [];
  cleanups.push(async () => {
    for (const a of agents) a.close();
    client.close();
    await scheduler.stop();
  });
  return {
    scheduler,
    client,
    run: (req, caller) => {
      const metadata = new Metadata();
      if (caller) metadata.set('x-baton-caller', caller);
      const full = RunTaskRequest.fromPartial({ task: 'acme::restart', inputJson: '{"action":"stop","password":"s3cret"}', ...req });
      return unary(client, client.runTask, full, { metadata, deadlineMs: 20_000 });
    },
    agent: async (identity) => {
      const a = await TestAgent.connect(scheduler.address, { identity, facts: {}, classes: [], agents: ['bolt_tasks'], version: '0.1.0' });
      agents.push(a);
      return a;
    },
    cancel: async (taskId) => (await unary(client, client.cancelRun, { taskId })).nodes,
  };
}

/**
 * Lets the lease of run `taskId` lapse, as when its coordinator stalls, and takes the run over
 * as another replica does (the coordinator renews meanwhile, so the lapse may need a few tries).
 */
async function takeOverElsewhere(keyPrefix: string, taskId: string): Promise<void> {
  const client = redis.client();
  const keys = new RedisKeys(keyPrefix);
  const other = new RunStateStore(client, keys, 'replica-b', 60_000);
  await waitFor(
    'another replica to take the run over',
    async () => {
      await client.del(keys.runLease(taskId));
      return typeof (await other.takeOver(taskId)) === 'object';
    },
    10_000,
    20,
  );
}

async function grpcError(p: Promise<unknown>): Promise<ServiceError> {
  return p.then(
    () => assert.fail('expected the call to fail'),
    (err: ServiceError) => err,
  );
}

function finished(host: string, taskId: string, state = NodeState.NODE_STATE_SUCCEEDED): NodeResult {
  return NodeResult.fromPartial({
    host,
    taskId,
    state,
    exitcode: state === NodeState.NODE_STATE_SUCCEEDED ? 0 : 1,
    stdout: '{}',
    value: {},
    completed: true,
    runtime: 0.1,
    startTime: new Date(),
    statuscode: state === NodeState.NODE_STATE_SUCCEEDED ? 0 : 1,
  });
}

/** Plays a well-behaved agent through one run: download OK, run, started, finished; returns the RunCommand. */
async function playRun(agent: TestAgent, identity: string) {
  const download = await agent.next('download');
  agent.send({ $case: 'downloadResult', value: { requestId: download.requestId, ok: true, downloaded: 1, error: '' } });
  const run = await agent.next('run');
  agent.send({ $case: 'taskStarted', value: { taskId: run.taskId, startTime: new Date() } });
  agent.send({ $case: 'taskFinished', value: { result: finished(identity, run.taskId) } });
  assert.deepEqual(await agent.next('resultAck'), { taskId: run.taskId });
  return { download, run };
}

describe('RunOrchestrator', () => {
  it('passes NOT_FOUND through for a task the catalog does not have', async () => {
    const h = await start();
    const err = await grpcError(h.run({ task: 'acme::nope' }));
    assert.equal(err.code, status.NOT_FOUND);
  });

  it('rejects invalid input with a BadRequest naming each parameter', async () => {
    const h = await start();
    const report = readServiceError(await grpcError(h.run({ inputJson: '{"actoin":"stop","service":5}' })));
    assert.equal(report.code, status.INVALID_ARGUMENT);
    assert.deepEqual(report.violations, [
      { field: 'actoin', description: "has no parameter named 'actoin'" },
      { field: 'action', description: "expects a value for parameter 'action'" },
      { field: 'password', description: "expects a value for parameter 'password'" },
      { field: 'service', description: "parameter 'service' expects a String value, got Integer" },
    ]);
    assert.match(report.message, /^invalid input for task acme::restart: has no parameter named 'actoin'; /);
  });

  it('refuses noop for a task that does not support it', async () => {
    const h = await start();
    const report = readServiceError(await grpcError(h.run({ noop: true })));
    assert.equal(report.code, status.FAILED_PRECONDITION);
    assert.equal(report.message, 'task acme::restart does not support noop');
  });

  it('fails with FAILED_PRECONDITION when no node matches the filter', async () => {
    const h = await start();
    await h.agent('web1');
    const report = readServiceError(await grpcError(h.run({ filter: { identities: ['db1'], classes: [], agents: [], facts: [], compound: [] } })));
    assert.equal(report.code, status.FAILED_PRECONDITION);
    assert.equal(report.message, 'no nodes matched the filter');
  });

  it('distributes the files, runs on every node and returns their results', async () => {
    const h = await start();
    const agents = { web1: await h.agent('web1'), web2: await h.agent('web2') };
    const requestId = '4c5d1c2e-8f7a-4b7e-9a51-0d6f3e2b1a90';
    const response = h.run({ requestId }, 'user=alice');
    const [one] = await Promise.all([playRun(agents.web1, 'web1'), playRun(agents.web2, 'web2')]);

    assert.equal(one.download.task, 'acme::restart');
    assert.equal(one.download.environment, 'production');
    assert.deepEqual(
      one.download.files.map((f) => f.path),
      ['acme/tasks/restart.sh'],
    );
    assert.equal(one.run.executable, 'acme/tasks/restart.sh');
    assert.equal(one.run.inputJson, '{"action":"stop","password":"s3cret","service":"httpd"}');
    assert.deepEqual(one.run.sensitiveParameters, ['password']);
    assert.equal(one.run.caller, 'user=alice');
    assert.equal(one.run.taskId, one.download.taskId);

    const r = await response;
    assert.equal(r.taskId, one.run.taskId);
    assert.equal(r.run?.state, RunState.RUN_STATE_SUCCEEDED);
    assert.deepEqual(r.run?.nodes, ['web1', 'web2']);
    assert.equal(r.run?.caller, 'user=alice');
    assert.equal(r.run?.requestId, requestId);
    assert.equal(r.run?.inputJson, '{"action":"stop","password":"Sensitive [value redacted]","service":"httpd"}');
    assert.deepEqual(
      r.results.map((x) => [x.host, x.state, x.task, x.callerid]),
      [
        ['web1', NodeState.NODE_STATE_SUCCEEDED, 'acme::restart', 'user=alice'],
        ['web2', NodeState.NODE_STATE_SUCCEEDED, 'acme::restart', 'user=alice'],
      ],
    );
  });

  it('closes the download gate when a node fails or does not answer, recording why', async () => {
    const h = await start(1);
    const web1 = await h.agent('web1');
    await h.agent('web2'); // never answers
    const response = grpcError(h.run({}));
    const download = await web1.next('download');
    web1.send({ $case: 'downloadResult', value: { requestId: download.requestId, ok: false, downloaded: 0, error: 'acme/tasks/restart.sh: sha256 mismatch' } });
    const report = readServiceError(await response);
    const reason = 'could not download the task onto all nodes: web1: acme/tasks/restart.sh: sha256 mismatch; web2: no response';
    assert.equal(report.code, status.FAILED_PRECONDITION);
    assert.equal(report.message, reason);

    const runStatus = await unary(results, results.getRunStatus, { taskId: download.taskId });
    assert.equal(runStatus.run?.state, RunState.RUN_STATE_FAILED);
    assert.equal(runStatus.run?.error, reason);
    assert.deepEqual(
      runStatus.items.map((x) => [x.host, x.state, x.statuscode, x.statusmsg]),
      [
        ['web1', NodeState.NODE_STATE_FAILED, 5, 'acme/tasks/restart.sh: sha256 mismatch'],
        ['web2', NodeState.NODE_STATE_NO_RESPONSE, 5, 'no response to the download command within 1 s'],
      ],
    );
    assert.equal(
      web1.received.some((m) => m.message?.$case === 'run'),
      false,
    );
  });

  it('fails nothing when its gate closes after another scheduler took the run over, and answers with the run', async () => {
    const prefix = uniquePrefix();
    const h = await start(2, prefix);
    await h.agent('web1'); // never answers the download
    const call = h.run({ background: true });
    const keys = new RedisKeys(prefix);
    const main = redis.client();
    const taskId = await waitFor('the run to be in its download gate', async () => (await main.zrange(keys.activeRuns(), 0, 0))[0], 10_000, 20);
    // Its lease lapses, as when its coordinator stalls, and another replica takes the run over.
    await takeOverElsewhere(prefix, taskId);
    const answer = await call;
    assert.equal(answer.taskId, taskId, 'RunTask answers with the run, not DOWNLOAD_FAILED');
    const runStatus = await unary(results, results.getRunStatus, { taskId });
    assert.equal(runStatus.run?.state, RunState.RUN_STATE_DOWNLOADING, 'the run goes on where it was taken over');
    assert.deepEqual(
      runStatus.items.filter((r) => r.state === NodeState.NODE_STATE_NO_RESPONSE).map((r) => r.host),
      [],
      'no node is recorded as not answering by the scheduler that lost the run',
    );
  });

  it('fails nothing when a run it resumed in its download gate is taken over by yet another scheduler before that gate closes', async () => {
    const prefix = uniquePrefix();
    const first = await start(30, prefix);
    await first.agent('web1'); // never answers the download
    // Answered once the first scheduler stops (the run is its no more): how is not at issue here.
    const call = first.run({ background: true }).catch((err: Error) => err);
    const keys = new RedisKeys(prefix);
    const main = redis.client();
    const taskId = await waitFor('the run to be in its download gate', async () => (await main.zrange(keys.activeRuns(), 0, 0))[0], 10_000, 20);
    const epochOf = async () => main.hget(keys.runOrchestration(taskId), 'epoch');
    const gateDeadlineOf = async () => main.hget(keys.runOrchestration(taskId), 'gate_deadline');
    const firstEpoch = await epochOf();
    const firstDeadline = await gateDeadlineOf();
    // The first scheduler stops and releases the run.
    await first.scheduler.stop();
    await call;
    // The resumer takes the run over at its first scan and regates. Its gate lasts 2 s and its
    // run lease is long, so that no renewal comes before the gate closes: what the gate's end
    // finds is all it learns of the takeover below, as for a scheduler that stalled meanwhile.
    // Its log tells when that gate closed, whichever way it ends.
    const resumerLog: string[] = [];
    await start(2, prefix, { runLeaseS: 60, log: pino({ level: 'info' }, { write: (line: string) => void resumerLog.push(line) }) });
    // Its regate has begun once it wrote its own gate deadline: a takeover before that fences it
    // at that write, and its gate never closes.
    await waitFor(
      'the resumer to take the run over and regate',
      async () => (await epochOf()) !== firstEpoch && (await gateDeadlineOf()) !== firstDeadline,
      15_000,
      20,
    );
    // Its regate waits for web1, gone with the first scheduler; yet another replica takes the run over meanwhile.
    await takeOverElsewhere(prefix, taskId);
    const resumerEpoch = await epochOf();
    await waitFor("the resumer's gate to close on web1", () => resumerLog.some((line) => line.includes('download gate closed')), 10_000, 20);
    const runStatus = await unary(results, results.getRunStatus, { taskId });
    assert.equal(runStatus.run?.state, RunState.RUN_STATE_DOWNLOADING, 'the run goes on where it was taken over');
    assert.deepEqual(
      runStatus.items.filter((r) => r.state === NodeState.NODE_STATE_NO_RESPONSE).map((r) => r.host),
      [],
      'no node is recorded as not answering by the scheduler that lost the run',
    );
    assert.equal(await epochOf(), resumerEpoch, 'the run stays with the replica that took it over last');
  });

  it('answers a foreground call with the run as it ends elsewhere when its run command is refused after another scheduler took the run over', async () => {
    const prefix = uniquePrefix();
    const h = await start(10, prefix);
    const web1 = await h.agent('web1');
    const call = h.run({ waitS: 15 });
    const download = await web1.next('download');
    const taskId = download.taskId;
    // The results service stops answering, so the run waits in its state change to RUNNING, past
    // the gate and before its run command; meanwhile its lease lapses, as when its coordinator
    // stalls, and another replica takes the run over.
    const resultsPid = resultsChild!.child.pid!;
    process.kill(resultsPid, 'SIGSTOP');
    try {
      web1.send({ $case: 'downloadResult', value: { requestId: download.requestId, ok: true, downloaded: 1, error: '' } });
      await takeOverElsewhere(prefix, taskId);
    } finally {
      process.kill(resultsPid, 'SIGCONT');
    }
    await waitFor(
      'the run to be RUNNING',
      async () => (await unary(results, results.getRunStatus, { taskId })).run?.state === RunState.RUN_STATE_RUNNING,
      10_000,
      20,
    );
    // The replica that took the run over ends it.
    await unary(results, results.recordNodeResults, { taskId, results: [finished('web1', taskId)] });
    await unary(results, results.updateRunState, { taskId, state: RunState.RUN_STATE_SUCCEEDED, reason: '' });
    const endedMs = Date.now();
    const answer = await call;
    assert.equal(answer.run?.state, RunState.RUN_STATE_SUCCEEDED, 'the answer is the run as it ended where it was taken over');
    assert.ok(Date.now() - endedMs < 8_000, `answered ${Date.now() - endedMs} ms after the run ended, not when wait_s ran out`);
    assert.equal(
      web1.received.some((m) => m.message?.$case === 'run'),
      false,
      'the scheduler that lost the run sends no run command',
    );
  });

  it('stops waiting after wait_s with the results so far, while the task keeps running', async () => {
    const h = await start();
    const web1 = await h.agent('web1');
    const started = Date.now();
    const response = h.run({ waitS: 1 });
    await web1.acceptDownload();
    const run = await web1.next('run');
    web1.send({ $case: 'taskStarted', value: { taskId: run.taskId, startTime: new Date() } });
    const r = await response;
    assert.ok(Date.now() - started >= 1_000);
    assert.equal(r.run?.state, RunState.RUN_STATE_RUNNING);
    assert.deepEqual(
      r.results.map((x) => [x.host, x.completed]),
      [['web1', false]],
    );
    assert.equal(r.stillRunning, 1);
  });

  it('returns at once in background and still stores results that arrive later', async () => {
    const h = await start();
    const web1 = await h.agent('web1');
    const response = h.run({ background: true });
    await web1.acceptDownload();
    const run = await web1.next('run');
    const r = await response;
    assert.equal(r.run?.state, RunState.RUN_STATE_RUNNING);
    assert.deepEqual(r.results, []);

    web1.send({ $case: 'taskFinished', value: { result: finished('web1', run.taskId, NodeState.NODE_STATE_FAILED) } });
    assert.deepEqual(await web1.next('resultAck'), { taskId: run.taskId });
    const stored = await unary(results, results.getRunStatus, { taskId: run.taskId });
    assert.deepEqual(
      stored.items.map((x) => [x.host, x.state]),
      [['web1', NodeState.NODE_STATE_FAILED]],
    );
    assert.equal(stored.run?.state, RunState.RUN_STATE_FAILED);
  });

  it('records results re-sent in a Hello after a reconnect, and acknowledges results of unknown runs', async () => {
    const h = await start();
    const first = await h.agent('web1');
    const response = h.run({ background: true });
    await first.acceptDownload();
    const run = await first.next('run');
    await response;
    first.close(); // the agent restarts before reporting

    const unknown = newTaskId();
    const again = new TestAgent(h.scheduler.address);
    cleanups.push(() => again.close());
    again.send({
      $case: 'hello',
      value: {
        identity: 'web1',
        facts: {},
        classes: [],
        agents: [],
        version: '0.1.0',
        unacknowledgedResults: [{ result: finished('web1', run.taskId) }, { result: finished('web1', unknown) }],
        followsHeartbeatInterval: false,
      },
    });
    await again.next('welcome');
    // Each acknowledged once stored or refused; results of different runs go in different batches, in any order.
    const acks = [(await again.next('resultAck')).taskId, (await again.next('resultAck')).taskId];
    assert.deepEqual(acks.sort(), [run.taskId, unknown].sort());
    const stored = await unary(results, results.getRunStatus, { taskId: run.taskId });
    assert.deepEqual(
      stored.items.map((x) => [x.host, x.state]),
      [['web1', NodeState.NODE_STATE_SUCCEEDED]],
    );
  });

  it('moves a run on when the results service answers its state change only after the deadline, and names a call that gets no answer', async () => {
    const h = await start();
    const web1 = await h.agent('web1');
    const response = h.run({ background: true });
    const download = await web1.next('download');
    const state = async () => (await unary(results, results.getRunStatus, { taskId: download.taskId })).run?.state;
    await waitFor('the run to be DOWNLOADING', async () => (await state()) === RunState.RUN_STATE_DOWNLOADING, 5_000, 25);
    const pid = children[1].child.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      const err = await grpcError(unary(results, results.getRunStatus, { taskId: download.taskId }, { deadlineMs: 300 }));
      assert.equal(err.code, status.DEADLINE_EXCEEDED);
      assert.match(err.details, /^ResultsService\.GetRunStatus gave no answer within its deadline of 0\.3 s \(Deadline exceeded/);
      // The gate passes; the RUNNING state change then waits on the stopped service past its deadline.
      web1.send({ $case: 'downloadResult', value: { requestId: download.requestId, ok: true, downloaded: 0, error: '' } });
      await new Promise((resolve) => setTimeout(resolve, runRecordDeadlineMs(1) + 1_000));
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const run = await web1.next('run', 10_000);
    assert.equal((await response).run?.state, RunState.RUN_STATE_RUNNING);
    web1.send({ $case: 'taskFinished', value: { result: finished('web1', run.taskId) } });
    assert.deepEqual(await web1.next('resultAck'), { taskId: run.taskId });
    await waitFor('the run to succeed', async () => (await state()) === RunState.RUN_STATE_SUCCEEDED, 5_000, 25);
  });

  it('sends a cancel to the connected nodes of a run', async () => {
    const h = await start();
    const { web1, run } = await runningOnWeb1(h);
    assert.deepEqual(await h.cancel(run.taskId), ['web1']);
    assert.deepEqual(await web1.next('cancel'), { taskId: run.taskId });
    const err = await grpcError(h.cancel(newTaskId()));
    assert.equal(err.code, status.NOT_FOUND);
  });

  it('records a node that disconnects between the gate and the run as NO_RESPONSE, and runs the others', async () => {
    const h = await start();
    const web1 = await h.agent('web1');
    const web2 = await h.agent('web2');
    const response = h.run({ background: true });
    await web1.acceptDownload();
    const d2 = await web2.next('download');
    web1.close();
    const index = makeClient(SchedulerServiceClient, h.scheduler.address);
    cleanups.push(() => index.close());
    await waitFor('web1 to be offline', async () => {
      const { nodes } = await unary(index, index.discoverNodes, { filter: undefined, includeOffline: false });
      return nodes.every((n) => n.identity !== 'web1');
    });
    web2.send({ $case: 'downloadResult', value: { requestId: d2.requestId, ok: true, downloaded: 0, error: '' } });
    const run = await web2.next('run');
    const r = await response;
    assert.equal(r.run?.state, RunState.RUN_STATE_RUNNING);
    const stored = await unary(results, results.getRunStatus, { taskId: run.taskId });
    assert.deepEqual(
      stored.items.map((x) => [x.host, x.state, x.statusmsg]),
      [
        ['web1', NodeState.NODE_STATE_NO_RESPONSE, 'the node disconnected before the run command could be sent'],
        ['web2', NodeState.NODE_STATE_PENDING, ''],
      ],
    );
  });

  it('records matched offline nodes as NO_RESPONSE and runs on the online ones', async () => {
    const h = await start();
    const db1 = await h.agent('db1');
    const web1 = await h.agent('web1');
    db1.close();
    const client = makeClient(SchedulerServiceClient, h.scheduler.address);
    cleanups.push(() => client.close());
    await waitFor(
      'db1 to be offline',
      async () => (await unary(client, client.discoverNodes, { filter: undefined, includeOffline: false })).offlineMatches === 1,
    );
    const response = h.run({ background: true });
    await web1.acceptDownload();
    const run = await web1.next('run');
    const r = await response;
    assert.deepEqual(r.run?.nodes, ['db1', 'web1']);
    const stored = await unary(results, results.getRunStatus, { taskId: run.taskId });
    assert.deepEqual(
      stored.items.map((x) => [x.host, x.state, x.statusmsg]),
      [
        ['db1', NodeState.NODE_STATE_NO_RESPONSE, 'no response: the node was offline when the run started'],
        ['web1', NodeState.NODE_STATE_PENDING, ''],
      ],
    );
    const onlyOffline = readServiceError(await grpcError(h.run({ filter: { identities: ['db1'], classes: [], agents: [], facts: [], compound: [] } })));
    assert.equal(onlyOffline.code, status.FAILED_PRECONDITION);
    assert.equal(onlyOffline.message, 'no online nodes matched the filter (1 matched but are offline)');
  });

  it('cancels a run before its run command goes out, leaving every node unstarted', async () => {
    const h = await start();
    const web1 = await h.agent('web1');
    const response = h.run({});
    const download = await web1.next('download');
    assert.deepEqual(await h.cancel(download.taskId), ['web1']);
    assert.deepEqual(await web1.next('cancel'), { taskId: download.taskId });
    web1.send({ $case: 'downloadResult', value: { requestId: download.requestId, ok: true, downloaded: 0, error: '' } });
    const r = await response;
    assert.equal(r.run?.state, RunState.RUN_STATE_CANCELLED);
    assert.equal(r.run?.error, '');
    assert.deepEqual(
      r.results.map((x) => [x.host, x.state, x.statusmsg]),
      [['web1', NodeState.NODE_STATE_CANCELLED, 'cancelled before the task started on this node']],
    );
    assert.equal(
      web1.received.some((m) => m.message?.$case === 'run'),
      false,
    );
  });
});

/** Finishes a node's task as the agent would: TaskStarted, TaskFinished, and waits for the ack. */
async function finish(agent: TestAgent, identity: string, taskId: string, state = NodeState.NODE_STATE_SUCCEEDED): Promise<void> {
  agent.send({ $case: 'taskStarted', value: { taskId, startTime: new Date() } });
  agent.send({ $case: 'taskFinished', value: { result: finished(identity, taskId, state) } });
  assert.deepEqual(await agent.next('resultAck'), { taskId });
}

function ranOn(agent: TestAgent): boolean {
  return agent.received.some((m) => m.message?.$case === 'run');
}

async function storedStates(taskId: string): Promise<Array<[string, NodeState, string]>> {
  const stored = await unary(results, results.getRunStatus, { taskId });
  return stored.items.map((x) => [x.host, x.state, x.statusmsg]);
}

/** Opens a WatchRun stream: the events so far, and a promise of them all and the final status code. */
function openWatch(h: Harness, taskId: string, resumeToken = ''): { events: RunEvent[]; ended: Promise<{ events: RunEvent[]; code: status }> } {
  const call = h.client.watchRun({ taskId, resumeToken });
  const events: RunEvent[] = [];
  call.on('data', (m: WatchRunResponse) => events.push(m.event!));
  const ended = new Promise<{ events: RunEvent[]; code: status }>((resolve) => {
    call.on('error', (err: ServiceError) => resolve({ events, code: err.code }));
    call.on('end', () => resolve({ events, code: status.OK }));
  });
  return { events, ended };
}

let admin: ReturnType<typeof redis.client> | undefined;

/** Runs followed by the results service now: it follows each on a Redis connection of its own, named baton-results-watch. */
async function followerCount(): Promise<number> {
  admin ??= redis.client();
  const list = (await admin.call('CLIENT', 'LIST')) as string;
  return list.split('\n').filter((l) => l.includes('name=baton-results-watch')).length;
}

/** A background run on agent web1, dispatched: the agent holds its RunCommand, the task not yet finished. */
async function runningOnWeb1(h: Harness): Promise<{ web1: TestAgent; run: RunCommand }> {
  const web1 = await h.agent('web1');
  const response = h.run({ background: true });
  await web1.acceptDownload();
  const run = await web1.next('run');
  await response;
  return { web1, run };
}

/** Reads a WatchRun stream to its end. */
function readWatch(h: Harness, taskId: string, resumeToken = ''): Promise<{ events: RunEvent[]; code: status }> {
  return openWatch(h, taskId, resumeToken).ended;
}

describe('RunOrchestrator: batches, idempotency, cancel, WatchRun', () => {
  it('runs every online node when the request has no filter, and refuses a run when no node is online', async () => {
    const h = await start();
    const none = readServiceError(await grpcError(h.run({})));
    assert.equal(none.code, status.FAILED_PRECONDITION);
    assert.equal(none.message, 'no nodes matched the filter');
    const agents = [await h.agent('a1'), await h.agent('b2'), await h.agent('c3')];
    const response = h.run({ background: true });
    for (const a of agents) await a.acceptDownload();
    const r = await response;
    assert.deepEqual(r.run?.nodes, ['a1', 'b2', 'c3']);
    for (const a of agents) assert.equal((await a.next('run')).taskId, r.taskId);
  });

  it('refuses contradictory batch fields and a malformed request_id, naming the field', async () => {
    const h = await start();
    const cases: Array<[Partial<RunTaskRequest>, string, RegExp]> = [
      [{ batchSize: 2, batchPercent: 50 }, 'batch_percent', /both set; expected at most one of them/],
      [{ batchPercent: 101 }, 'batch_percent', /expected 1 to 100/],
      [{ batchSleepS: 5 }, 'batch_sleep_s', /without batches/],
      [{ requestId: 'a b' }, 'request_id', /expected 1-128 characters of \[A-Za-z0-9._-\]/],
      [{ requestId: 'x'.repeat(129) }, 'request_id', /expected 1-128 characters/],
    ];
    for (const [req, field, description] of cases) {
      const report = readServiceError(await grpcError(h.run(req)));
      assert.equal(report.code, status.INVALID_ARGUMENT, field);
      assert.deepEqual(
        report.violations.map((v) => v.field),
        [field],
      );
      assert.match(report.violations[0].description, description);
    }
  });

  it('starts each batch only once every node of the previous batch is final, under one task id', async () => {
    const h = await start();
    const agents = { n1: await h.agent('n1'), n2: await h.agent('n2'), n3: await h.agent('n3') };
    const response = h.run({ batchSize: 2, batchSleepS: 1, waitS: 20 });
    for (const a of Object.values(agents)) await a.acceptDownload();
    const first = await agents.n1.next('run');
    assert.equal((await agents.n2.next('run')).taskId, first.taskId);
    await waitFor('n3 to show as DOWNLOADED', async () =>
      (await storedStates(first.taskId)).some(([h1, s]) => h1 === 'n3' && s === NodeState.NODE_STATE_DOWNLOADED),
    );
    assert.equal(ranOn(agents.n3), false);

    await finish(agents.n1, 'n1', first.taskId);
    assert.equal(ranOn(agents.n3), false, 'n3 started while n2 was still running');
    await finish(agents.n2, 'n2', first.taskId);
    const batchTwoAt = Date.now();
    const second = await agents.n3.next('run', 10_000);
    assert.ok(Date.now() - batchTwoAt >= 900, 'the batch sleep of 1 s was not kept');
    assert.equal(second.taskId, first.taskId);
    await finish(agents.n3, 'n3', first.taskId);

    const r = await response;
    assert.equal(r.run?.state, RunState.RUN_STATE_SUCCEEDED);
    assert.equal(r.stillRunning, 0);
    assert.deepEqual(
      r.results.map((x) => x.state),
      [NodeState.NODE_STATE_SUCCEEDED, NodeState.NODE_STATE_SUCCEEDED, NodeState.NODE_STATE_SUCCEEDED],
    );
  });

  it('returns after the first batch in background and carries on with later batches', async () => {
    const h = await start();
    const agents = { n1: await h.agent('n1'), n2: await h.agent('n2') };
    const response = h.run({ batchPercent: 50, background: true });
    for (const a of Object.values(agents)) await a.acceptDownload();
    const run = await agents.n1.next('run');
    const r = await response;
    assert.equal(r.taskId, run.taskId);
    assert.equal(r.run?.state, RunState.RUN_STATE_RUNNING);
    assert.equal(ranOn(agents.n2), false);
    await finish(agents.n1, 'n1', run.taskId);
    await finish(agents.n2, 'n2', (await agents.n2.next('run', 10_000)).taskId);
    await waitFor(
      'the run to succeed',
      async () => (await unary(results, results.getRunStatus, { taskId: run.taskId })).run?.state === RunState.RUN_STATE_SUCCEEDED,
    );
  });

  it('cancels a batched run: the running node is signalled, later batches never start and are recorded CANCELLED', async () => {
    const h = await start();
    const agents = { n1: await h.agent('n1'), n2: await h.agent('n2'), n3: await h.agent('n3') };
    const response = h.run({ batchSize: 1, background: true });
    for (const a of Object.values(agents)) await a.acceptDownload();
    const run = await agents.n1.next('run');
    await response;
    agents.n1.send({ $case: 'taskStarted', value: { taskId: run.taskId, startTime: new Date() } });
    await waitFor('n1 to run', async () => (await storedStates(run.taskId)).some(([n, s]) => n === 'n1' && s === NodeState.NODE_STATE_RUNNING));

    assert.deepEqual(await h.cancel(run.taskId), ['n1', 'n2', 'n3']);
    assert.deepEqual(await agents.n1.next('cancel'), { taskId: run.taskId });
    const afterCancel = await unary(results, results.getRunStatus, { taskId: run.taskId });
    assert.equal(afterCancel.run?.state, RunState.RUN_STATE_CANCELLED);
    assert.deepEqual(
      afterCancel.items.map((x) => [x.host, x.state, x.statusmsg]),
      [
        ['n1', NodeState.NODE_STATE_RUNNING, ''],
        ['n2', NodeState.NODE_STATE_CANCELLED, 'cancelled before the task started on this node'],
        ['n3', NodeState.NODE_STATE_CANCELLED, 'cancelled before the task started on this node'],
      ],
    );
    // The agent stops the task and reports it CANCELLED; the batch sleep (1 s) passes meanwhile.
    agents.n1.send({
      $case: 'taskFinished',
      value: { result: { ...finished('n1', run.taskId), state: NodeState.NODE_STATE_CANCELLED, exitcode: 143, statuscode: 1 } },
    });
    await agents.n1.next('resultAck');
    await waitFor('n1 CANCELLED', async () => (await storedStates(run.taskId))[0][1] === NodeState.NODE_STATE_CANCELLED);
    // Without the cancel, n2's run command would follow n1's final result after the 1 s batch sleep.
    await assert.rejects(
      waitFor('a run command to a later batch', () => ranOn(agents.n2) || ranOn(agents.n3), 2_500),
      /timed out/,
    );
    const final = await unary(results, results.getRunStatus, { taskId: run.taskId });
    assert.equal(final.run?.state, RunState.RUN_STATE_CANCELLED);

    const again = readServiceError(await grpcError(h.cancel(run.taskId)));
    assert.equal(again.code, status.FAILED_PRECONDITION);
    assert.equal(again.message, `run ${run.taskId} is RUN_STATE_CANCELLED already; only a run that has not finished can be cancelled`);
  });

  it('answers a repeated request id with the first run, and starts only one run for concurrent duplicates', async () => {
    const h = await start();
    const web1 = await h.agent('web1');
    const requestId = 'deploy-2026-11-28.1';
    const calls = [h.run({ requestId, background: true }, 'user=alice'), h.run({ requestId, background: true }, 'user=alice')];
    const download = await web1.acceptDownload();
    const run = await web1.next('run');
    const [one, two] = await Promise.all(calls);
    assert.equal(one.taskId, run.taskId);
    assert.equal(two.taskId, run.taskId);
    assert.equal(web1.received.filter((m) => m.message?.$case === 'download').length, 1);
    assert.equal(download.taskId, run.taskId);

    // A foreground repeat waits for the run as the first call would.
    const repeat = h.run({ requestId, waitS: 20 }, 'user=alice');
    await finish(web1, 'web1', run.taskId);
    const answered = await repeat;
    assert.equal(answered.taskId, run.taskId);
    assert.equal(answered.run?.state, RunState.RUN_STATE_SUCCEEDED);
    assert.deepEqual(
      answered.results.map((x) => x.state),
      [NodeState.NODE_STATE_SUCCEEDED],
    );
    assert.equal(web1.received.filter((m) => m.message?.$case === 'download').length, 1);

    // Another caller's same id is another request.
    const bob = h.run({ requestId, background: true }, 'user=bob');
    await web1.acceptDownload();
    assert.notEqual((await bob).taskId, run.taskId);
  });

  it('answers a repeated request id on another scheduler replica by waiting for the run there', async () => {
    const prefix = uniquePrefix();
    const first = await start(10, prefix);
    const other = await start(10, prefix);
    const web1 = await first.agent('web1');
    const requestId = 'replica-retry-1';
    const response = first.run({ requestId, background: true });
    await web1.acceptDownload();
    const run = await web1.next('run');
    assert.equal((await response).taskId, run.taskId);
    const early = await other.run({ requestId, waitS: 1 });
    assert.deepEqual([early.taskId, early.run?.state, early.stillRunning], [run.taskId, RunState.RUN_STATE_RUNNING, 1]);
    // `other` does not track the run: it follows the run's event log (the results service's
    // Redis follower shows it) until the run is final.
    const repeat = other.run({ requestId, waitS: 20 });
    await waitFor('the repeat to follow the run', async () => (await followerCount()) === 1);
    await finish(web1, 'web1', run.taskId);
    const answered = await repeat;
    assert.equal(answered.taskId, run.taskId);
    assert.equal(answered.run?.state, RunState.RUN_STATE_SUCCEEDED);
    assert.equal(answered.stillRunning, 0);
  });

  it('does not take the request id of a request refused for bad input', async () => {
    const h = await start();
    const web1 = await h.agent('web1');
    const requestId = '0f8a6c1e-0000-4000-8000-000000000001';
    const bad = readServiceError(await grpcError(h.run({ requestId, inputJson: '{"action":"jump"}' })));
    assert.equal(bad.code, status.INVALID_ARGUMENT);
    const response = h.run({ requestId, background: true });
    const download = await web1.acceptDownload();
    assert.equal((await response).taskId, download.taskId);
  });

  it("streams a run's events through WatchRun until it is final, resumes after a token, and answers NOT_FOUND for an unknown run", async () => {
    const h = await start();
    const { web1, run } = await runningOnWeb1(h);
    const watching = readWatch(h, run.taskId);
    await finish(web1, 'web1', run.taskId);
    const { events, code } = await watching;
    assert.equal(code, status.OK);
    const last = events.at(-1)!;
    assert.deepEqual(last.event?.$case === 'runStateChanged' && last.event.value.state, RunState.RUN_STATE_SUCCEEDED);
    assert.ok(events.some((e) => e.event?.$case === 'nodeResult' && e.event.value.state === NodeState.NODE_STATE_SUCCEEDED));

    const resumed = await readWatch(h, run.taskId, events[1].id);
    assert.equal(resumed.code, status.OK);
    assert.deepEqual(
      resumed.events.map((e) => e.id),
      events.slice(2).map((e) => e.id),
    );

    assert.equal((await readWatch(h, newTaskId())).code, status.NOT_FOUND);
    assert.equal((await readWatch(h, 'nope')).code, status.INVALID_ARGUMENT);
  });

  it('cancels its read of the results service when the WatchRun client goes away', async () => {
    const h = await start();
    const { run } = await runningOnWeb1(h);
    const call = h.client.watchRun({ taskId: run.taskId, resumeToken: '' });
    const events: RunEvent[] = [];
    call.on('data', (m: WatchRunResponse) => events.push(m.event!));
    const ended = new Promise<status>((resolve) => call.on('error', (err: ServiceError) => resolve(err.code)));
    await waitFor('the watch to follow the run', async () => events.length > 0 && (await followerCount()) === 1);
    call.cancel();
    assert.equal(await ended, status.CANCELLED);
    await waitFor('the upstream follow to end', async () => (await followerCount()) === 0);
  });

  it('ends an open WatchRun with OK when the scheduler drains', async () => {
    const h = await start();
    const { run } = await runningOnWeb1(h);
    const watching = openWatch(h, run.taskId);
    await waitFor('the RUNNING event', () =>
      watching.events.some((e) => e.event?.$case === 'runStateChanged' && e.event.value.state === RunState.RUN_STATE_RUNNING),
    );
    await h.scheduler.stop();
    const { code, events } = await watching.ended;
    assert.equal(code, status.OK);
    assert.equal(
      events.some((e) => e.event?.$case === 'runStateChanged' && e.event.value.state === RunState.RUN_STATE_SUCCEEDED),
      false,
    );
  });
});
