import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { NodeResult, NodeState, RunState } from '../../gen/baton/v1/run';
import { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { SchedulerServiceClient, RunTaskRequest, type RunTaskResponse } from '../../gen/baton/v1/scheduler_service';
import { startChild, type StartedChild } from '../../lib/child-process';
import { readServiceError } from '../../lib/errors';
import { makeClient, unary } from '../../lib/grpc-client';
import { createLogger } from '../../lib/logger';
import { LISTENING_LINE } from '../../lib/main';
import { packageRoot } from '../../lib/package-root';
import { newTaskId } from '../../lib/task-id';
import { uniquePrefix, useRedisServer } from '../../test/helpers/redis';
import { waitFor } from '../../test/helpers/wait';
import { startScheduler, type RunningScheduler } from './scheduler-server';
import { TestAgent } from './test-agent';

/**
 * RunTask end to end inside the scheduler: real baton-metadata and baton-results processes, a
 * real redis-server, the scheduler in-process, and test agents speaking the agent protocol.
 */

const redis = useRedisServer();
const log = createLogger('scheduler', 'silent');
const children: StartedChild[] = [];
let metadataAddress = '';
let resultsAddress = '';
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
  const child = await startChild(process.execPath, [main, '--listen', '127.0.0.1:0', '--log-level', 'warn', ...args], { ready: LISTENING_LINE });
  children.push(child);
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
  run(req: Partial<RunTaskRequest>, caller?: string): Promise<RunTaskResponse>;
  agent(identity: string): Promise<TestAgent>;
  cancel(taskId: string): Promise<string[]>;
}

async function start(downloadTimeoutS = 10): Promise<Harness> {
  const scheduler = await startScheduler({
    listen: '127.0.0.1:0',
    log,
    redisUrl: redis.url,
    keyPrefix: uniquePrefix(),
    metadataAddress,
    resultsAddress,
    heartbeatIntervalS: 10,
    downloadTimeoutS,
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
    assert.deepEqual(one.download.files.map((f) => f.path), ['acme/tasks/restart.sh']);
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
    assert.deepEqual(r.results.map((x) => [x.host, x.state, x.task, x.callerid]), [
      ['web1', NodeState.NODE_STATE_SUCCEEDED, 'acme::restart', 'user=alice'],
      ['web2', NodeState.NODE_STATE_SUCCEEDED, 'acme::restart', 'user=alice'],
    ]);
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
    assert.deepEqual(runStatus.items.map((x) => [x.host, x.state, x.statuscode, x.statusmsg]), [
      ['web1', NodeState.NODE_STATE_FAILED, 5, 'acme/tasks/restart.sh: sha256 mismatch'],
      ['web2', NodeState.NODE_STATE_NO_RESPONSE, 5, 'no response to the download command within 1 s'],
    ]);
    assert.equal(web1.received.some((m) => m.message?.$case === 'run'), false);
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
    assert.deepEqual(r.results.map((x) => [x.host, x.completed]), [['web1', false]]);
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
    assert.deepEqual(stored.items.map((x) => [x.host, x.state]), [['web1', NodeState.NODE_STATE_FAILED]]);
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
      },
    });
    await again.next('welcome');
    assert.deepEqual(await again.next('resultAck'), { taskId: run.taskId });
    assert.deepEqual(await again.next('resultAck'), { taskId: unknown });
    const stored = await unary(results, results.getRunStatus, { taskId: run.taskId });
    assert.deepEqual(stored.items.map((x) => [x.host, x.state]), [['web1', NodeState.NODE_STATE_SUCCEEDED]]);
  });

  it('sends a cancel to the connected nodes of a run', async () => {
    const h = await start();
    const web1 = await h.agent('web1');
    const response = h.run({ background: true });
    await web1.acceptDownload();
    const run = await web1.next('run');
    await response;
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
    assert.deepEqual(stored.items.map((x) => [x.host, x.state, x.statusmsg]), [
      ['web1', NodeState.NODE_STATE_NO_RESPONSE, 'the node disconnected before the run command could be sent'],
      ['web2', NodeState.NODE_STATE_PENDING, ''],
    ]);
  });

  it('records matched offline nodes as NO_RESPONSE and runs on the online ones', async () => {
    const h = await start();
    const db1 = await h.agent('db1');
    const web1 = await h.agent('web1');
    db1.close();
    const client = makeClient(SchedulerServiceClient, h.scheduler.address);
    cleanups.push(() => client.close());
    await waitFor('db1 to be offline', async () => (await unary(client, client.discoverNodes, { filter: undefined, includeOffline: false })).offlineMatches === 1);
    const response = h.run({ background: true });
    await web1.acceptDownload();
    const run = await web1.next('run');
    const r = await response;
    assert.deepEqual(r.run?.nodes, ['db1', 'web1']);
    const stored = await unary(results, results.getRunStatus, { taskId: run.taskId });
    assert.deepEqual(stored.items.map((x) => [x.host, x.state, x.statusmsg]), [
      ['db1', NodeState.NODE_STATE_NO_RESPONSE, 'no response: the node was offline when the run started'],
      ['web1', NodeState.NODE_STATE_PENDING, ''],
    ]);
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
    assert.deepEqual(r.results.map((x) => [x.host, x.state, x.statusmsg]), [['web1', NodeState.NODE_STATE_CANCELLED, 'cancelled before the task started']]);
    assert.equal(web1.received.some((m) => m.message?.$case === 'run'), false);
  });
});
