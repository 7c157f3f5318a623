import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { status, type ServiceError } from '@grpc/grpc-js';
import pino from 'pino';
import { NodeResult, NodeState, Run, RunState } from '../../gen/baton/v1/run';
import { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { join } from 'node:path';
import { startChild } from '../../lib/child-process';
import { LISTENING_LINE } from '../../lib/main';
import { packageRoot } from '../../lib/package-root';
import { FactOperator } from '../../gen/baton/v1/filter';
import { RunTaskRequest, SchedulerServiceClient, type DiscoverNodesRequest, type Node } from '../../gen/baton/v1/scheduler_service';
import { readServiceError } from '../../lib/errors';
import { freePort } from '../../lib/free-port';
import { makeClient, unary } from '../../lib/grpc-client';
import { createLogger } from '../../lib/logger';
import { RedisKeys } from '../../lib/redis';
import { newTaskId } from '../../lib/task-id';
import { uniquePrefix, useRedisServer } from '../../test/helpers/redis';
import { waitFor } from '../../test/helpers/wait';
import { startScheduler, type RunningScheduler, type SchedulerServerOptions } from './scheduler-server';
import { TestAgent } from '../../test/helpers/test-agent';

const redis = useRedisServer();
const log = createLogger('scheduler', 'silent');

let cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

interface Harness {
  scheduler: RunningScheduler;
  client: SchedulerServiceClient;
  keys: RedisKeys;
  discover(req?: Partial<DiscoverNodesRequest>): Promise<Node[]>;
  agent(identity: string, facts?: Record<string, unknown>): Promise<TestAgent>;
}

/** A scheduler on 127.0.0.1:0 with its own key prefix; metadata and results are not needed by these tests. */
async function start(options: Partial<SchedulerServerOptions> = {}): Promise<Harness> {
  const nowhere = `127.0.0.1:${await freePort()}`;
  const keyPrefix = uniquePrefix();
  const scheduler = await startScheduler({
    listen: '127.0.0.1:0',
    log,
    redisUrl: redis.url,
    keyPrefix,
    metadataAddress: nowhere,
    resultsAddress: nowhere,
    agentMetadataAddress: 'metadata.example.com:8443',
    heartbeatIntervalS: 10,
    drainGraceMs: 1_000,
    ...options,
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
    keys: new RedisKeys(keyPrefix),
    discover: async (req = {}) => (await unary(client, client.discoverNodes, { filter: undefined, includeOffline: false, ...req })).nodes,
    agent: async (identity, facts = {}) => {
      const a = await TestAgent.connect(scheduler.address, { identity, facts, classes: ['role::web'], agents: ['bolt_tasks'], version: '0.1.0' });
      agents.push(a);
      return a;
    },
  };
}

function rawAgent(h: Harness): TestAgent {
  const a = new TestAgent(h.scheduler.address);
  cleanups.push(() => a.close());
  return a;
}

async function grpcError(p: Promise<unknown>): Promise<ServiceError> {
  return p.then(
    () => assert.fail('expected the call to fail'),
    (err: ServiceError) => err,
  );
}

describe('AgentGatewayService', () => {
  it('answers a Hello with a Welcome and lists the node online in DiscoverNodes', async () => {
    const h = await start();
    const before = Date.now();
    const agent = new TestAgent(h.scheduler.address);
    cleanups.push(() => agent.close());
    agent.send({
      $case: 'hello',
      value: {
        identity: 'web1',
        facts: { os: { family: 'RedHat' } },
        classes: ['role::web'],
        agents: ['bolt_tasks'],
        version: '0.1.0',
        unacknowledgedResults: [],
        followsHeartbeatInterval: false,
      },
    });
    assert.deepEqual(await agent.next('welcome'), { heartbeatIntervalS: 10, metadataAddress: 'metadata.example.com:8443', anyMessageIsHeartbeat: true });

    const [node, ...rest] = await h.discover();
    assert.equal(rest.length, 0);
    assert.ok(node.lastSeen && node.lastSeen.getTime() >= before - 1 && node.lastSeen.getTime() <= Date.now());
    assert.deepEqual(
      { ...node, lastSeen: undefined },
      {
        identity: 'web1',
        online: true,
        lastSeen: undefined,
        facts: { os: { family: 'RedHat' } },
        classes: ['role::web'],
        agents: ['bolt_tasks'],
        version: '0.1.0',
      },
    );
  });

  it('marks the node offline when the stream ends, and keeps it in the index', async () => {
    const h = await start();
    const agent = await h.agent('web1');
    agent.end();
    await waitFor('the node to go offline', async () => (await h.discover()).length === 0);
    const nodes = await h.discover({ includeOffline: true });
    assert.deepEqual(
      nodes.map((n) => [n.identity, n.online]),
      [['web1', false]],
    );
  });

  it('ends a stream whose Hello has an invalid identity with INVALID_ARGUMENT, indexing nothing', async () => {
    const h = await start();
    const agent = rawAgent(h);
    agent.send({
      $case: 'hello',
      value: { identity: '../x', facts: {}, classes: [], agents: [], version: '', unacknowledgedResults: [], followsHeartbeatInterval: false },
    });
    const ended = await agent.ended();
    assert.equal(ended.code, status.INVALID_ARGUMENT);
    assert.equal(ended.details, "Hello.identity '../x' is not a valid node identity; expected ^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$");
    assert.deepEqual(await h.discover({ includeOffline: true }), []);
  });

  it('ends a stream whose first message is not a Hello with INVALID_ARGUMENT', async () => {
    const h = await start();
    const agent = rawAgent(h);
    agent.send({ $case: 'heartbeat', value: { sendTime: new Date(), runningTasks: 0, intervalS: 0 } });
    const ended = await agent.ended();
    assert.equal(ended.code, status.INVALID_ARGUMENT);
    assert.equal(ended.details, 'the first message must be a Hello, got heartbeat');
  });

  it('replaces the first connection of an identity with the second, which keeps the node online', async () => {
    const h = await start();
    const first = await h.agent('web1', { generation: 1 });
    const second = await h.agent('web1', { generation: 2 });
    const ended = await first.ended();
    assert.equal(ended.code, status.ABORTED);
    assert.equal(ended.details, "a newer connection of node 'web1' replaced this one");
    const nodes = await h.discover();
    assert.deepEqual(
      nodes.map((n) => [n.identity, n.online, n.facts]),
      [['web1', true, { generation: 2 }]],
    );
    assert.equal(second.status, undefined);
  });

  it('refreshes the last-seen time on heartbeats', async () => {
    const h = await start();
    const agent = await h.agent('web1');
    const c = redis.client();
    const first = Number(await c.hget(h.keys.node(0, 'web1'), 'last_seen'));
    await waitFor('the clock to move', () => Date.now() > first + 5);
    agent.send({ $case: 'heartbeat', value: { sendTime: new Date(), runningTasks: 0, intervalS: 0 } });
    const refreshed = await waitFor('last_seen to move', async () => {
      const t = Number(await c.hget(h.keys.node(0, 'web1'), 'last_seen'));
      return t > first ? t : undefined;
    });
    assert.equal(Number(await c.zscore(h.keys.nodes(0), 'web1')), refreshed);
  });

  it('answers each heartbeat with one of its own', async () => {
    const h = await start();
    const agent = await h.agent('web1');
    agent.send({ $case: 'heartbeat', value: { sendTime: new Date(), runningTasks: 0, intervalS: 0 } });
    const answer = await agent.next('heartbeat');
    assert.ok(answer.sendTime instanceof Date);
  });

  it('replaces the facts and classes of a node on a FactsUpdate', async () => {
    const h = await start();
    const agent = await h.agent('web1', { role: 'web' });
    agent.send({ $case: 'factsUpdate', value: { facts: { role: 'db' }, classes: ['role::db'] } });
    const nodes = await waitFor('the index to have the new facts', async () => {
      const n = await h.discover();
      return (n[0]?.facts as { role?: string } | undefined)?.role === 'db' ? n : undefined;
    });
    assert.deepEqual(
      nodes.map((n) => [n.identity, n.classes]),
      [['web1', ['role::db']]],
    );
  });

  it('ends the stream of an agent silent for 3 heartbeat intervals, and marks it offline', async () => {
    const h = await start({ heartbeatIntervalS: 1 });
    const agent = await h.agent('quiet');
    const ended = await agent.ended(6_000);
    assert.equal(ended.code, status.UNAVAILABLE);
    assert.match(ended.details, /^no message from the agent for \d+ s \(3 heartbeat intervals\); reconnect$/);
    await waitFor('the node to be marked offline', async () => (await redis.client().hget(h.keys.node(0, 'quiet'), 'online')) === '0');
  });

  it('does not acknowledge a result while the results service is unreachable', async () => {
    const lines: string[] = [];
    const h = await start({ log: pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) }) });
    const agent = rawAgent(h);
    const result = NodeResult.fromPartial({ host: 'web1', taskId: newTaskId(), state: NodeState.NODE_STATE_SUCCEEDED, completed: true });
    agent.send({
      $case: 'hello',
      value: { identity: 'web1', facts: {}, classes: [], agents: [], version: '', unacknowledgedResults: [{ result }], followsHeartbeatInterval: false },
    });
    await agent.next('welcome');
    await waitFor('the scheduler to give up recording', () => lines.some((l) => l.includes('could not record a result')), 15_000);
    assert.deepEqual(
      agent.received.map((m) => m.message?.$case),
      ['welcome'],
    );
    assert.equal(agent.status, undefined);
  });

  it('stores a result that came while the results service was down once it is back, and only then acknowledges it', async () => {
    const port = await freePort();
    const resultsPrefix = uniquePrefix();
    const startResults = async () => {
      const main = join(packageRoot(), 'dist', 'services', 'results', 'main.js');
      const child = await startChild(
        process.execPath,
        [main, '--insecure', '--listen', `127.0.0.1:${port}`, '--log-level', 'warn', '--redis-url', redis.url, '--key-prefix', resultsPrefix],
        { ready: LISTENING_LINE },
      );
      cleanups.push(() => child.stop());
      return child;
    };
    const taskId = newTaskId();
    const first = await startResults();
    const client = makeClient(ResultsServiceClient, `127.0.0.1:${port}`);
    cleanups.push(() => client.close());
    await unary(client, client.createRun, {
      run: Run.fromPartial({ taskId, task: 'acme::x', nodes: ['web1'], state: RunState.RUN_STATE_RUNNING, caller: 'user=t' }),
    });
    await first.stop();

    const lines: string[] = [];
    const h = await start({ resultsAddress: `127.0.0.1:${port}`, log: pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) }) });
    const agent = rawAgent(h);
    const result = NodeResult.fromPartial({ host: 'web1', taskId, state: NodeState.NODE_STATE_SUCCEEDED, completed: true, exitcode: 0 });
    agent.send({
      $case: 'hello',
      value: { identity: 'web1', facts: {}, classes: [], agents: [], version: '', unacknowledgedResults: [{ result }], followsHeartbeatInterval: false },
    });
    await agent.next('welcome');
    await waitFor('the scheduler to fail to record the result', () => lines.some((l) => l.includes('could not record a result')), 15_000);
    assert.deepEqual(
      agent.received.map((m) => m.message?.$case),
      ['welcome'],
      'no ack for a result not stored',
    );

    await startResults();
    const ack = await agent.next('resultAck', 30_000);
    assert.equal(ack.taskId, taskId);
    const stored = await unary(client, client.getRunStatus, { taskId });
    assert.equal(stored.run?.state, RunState.RUN_STATE_SUCCEEDED);
    assert.equal(stored.items[0].state, NodeState.NODE_STATE_SUCCEEDED);
  });

  it('ends every agent stream with UNAVAILABLE when draining, and marks the nodes offline', async () => {
    const h = await start();
    const agents = [await h.agent('a1'), await h.agent('a2')];
    await h.scheduler.stop();
    for (const a of agents) {
      const ended = await a.ended();
      assert.equal(ended.code, status.UNAVAILABLE);
      assert.equal(ended.details, 'the scheduler is shutting down; reconnect');
    }
    const c = redis.client();
    assert.deepEqual([await c.hget(h.keys.node(0, 'a1'), 'online'), await c.hget(h.keys.node(0, 'a2'), 'online')], ['0', '0']);
  });
});

describe('SchedulerService', () => {
  it('discovers by filter and compound expression, and rejects compound syntax errors and bad regexes with a BadRequest', async () => {
    const h = await start();
    await h.agent('web1', { os: { family: 'RedHat' } });
    await h.agent('web2', { os: { family: 'Debian' } });
    const redhat = await h.discover({
      filter: {
        identities: [],
        classes: [],
        agents: [],
        compound: [],
        facts: [{ fact: 'os.family', operator: FactOperator.FACT_OPERATOR_EQUAL, value: 'redhat' }],
      },
    });
    assert.deepEqual(
      redhat.map((n) => n.identity),
      ['web1'],
    );
    const notRedhat = await h.discover({ filter: { identities: [], classes: [], agents: [], facts: [], compound: ["not fact('os.family') == 'RedHat'"] } });
    assert.deepEqual(
      notRedhat.map((n) => n.identity),
      ['web2'],
    );

    const err = await grpcError(h.discover({ filter: { identities: ['/(/'], classes: [], agents: [], facts: [], compound: ['os.family=redhat and'] } }));
    const report = readServiceError(err);
    assert.equal(report.code, status.INVALID_ARGUMENT);
    assert.deepEqual(
      report.violations.map((v) => v.field),
      ['filter.compound[0]', 'filter.identities[0]'],
    );
    assert.match(report.message, /^filter\.compound\[0\]: .*column \d+.*; filter\.identities\[0\]: \/\(\/ is not a valid regular expression/);
  });

  it('rejects a malformed RunTask before asking any other service', async () => {
    const h = await start();
    const request = RunTaskRequest.fromPartial({ task: 'Acme::Restart', environment: 'Prod', runAs: 'x y', requestId: 'not valid!' });
    const bad = readServiceError(await grpcError(unary(h.client, h.client.runTask, request)));
    assert.equal(bad.code, status.INVALID_ARGUMENT);
    assert.deepEqual(
      bad.violations.map((v) => v.field),
      ['task', 'environment', 'run_as', 'request_id'],
    );
    assert.match(bad.violations[0].description, /^task 'Acme::Restart' is not a task name; expected <module>::<task>/);

    const batched = readServiceError(
      await grpcError(unary(h.client, h.client.runTask, RunTaskRequest.fromPartial({ task: 'acme::restart', batchPercent: 101 }))),
    );
    assert.equal(batched.code, status.INVALID_ARGUMENT);
    assert.deepEqual(
      batched.violations.map((v) => v.field),
      ['batch_percent'],
    );
  });

  it('rejects CancelRun with a malformed task id', async () => {
    const h = await start();
    const err = readServiceError(await grpcError(unary(h.client, h.client.cancelRun, { taskId: 'abc' })));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.equal(err.message, "task_id: 'abc' is not a task id; expected 32 lowercase hex characters");
  });
});
