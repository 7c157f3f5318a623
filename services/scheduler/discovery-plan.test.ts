import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Hello } from '../../gen/baton/v1/agent_gateway_service';
import { credentials, InterceptingCall, type Interceptor } from '@grpc/grpc-js';
import { ResultsServiceClient, type GetRunStatusRequest } from '../../gen/baton/v1/results_service';
import { NodeResult, NodeState, Run, RunState } from '../../gen/baton/v1/run';
import { startChild, type StartedChild } from '../../lib/child-process';
import { makeClient, unary } from '../../lib/grpc-client';
import { LISTENING_LINE } from '../../lib/main';
import { packageRoot } from '../../lib/package-root';
import { RedisKeys } from '../../lib/redis';
import { newTaskId } from '../../lib/task-id';
import { parseCompound } from '../../lib/filter-language';
import { uniquePrefix, useRedisServer } from '../../test/helpers/redis';
import { resultsServiceSource, runDiscovery } from './discovery-plan';
import { NodeIndex } from './node-index';

const redis = useRedisServer();
let results: StartedChild;
let client: ResultsServiceClient;

const HOSTS = ['web1', 'web2', 'web3'];

async function fleet(): Promise<NodeIndex> {
  const index = new NodeIndex(redis.client(), new RedisKeys(uniquePrefix()), 10);
  for (const identity of HOSTS) await index.upsert(Hello.fromPartial({ identity, classes: ['role::web'] }), `s-${identity}`);
  return index;
}

async function runWith(exitcodes: Record<string, number>, state: RunState): Promise<string> {
  const taskId = newTaskId();
  await unary(client, client.createRun, {
    run: Run.fromPartial({ taskId, task: 'acme::x', nodes: HOSTS, state: RunState.RUN_STATE_RUNNING, caller: 'user=t' }),
  });
  const done = Object.entries(exitcodes).map(([host, exitcode]) =>
    NodeResult.fromPartial({
      host,
      taskId,
      state: exitcode === 0 ? NodeState.NODE_STATE_SUCCEEDED : NodeState.NODE_STATE_FAILED,
      completed: true,
      exitcode,
      startTime: new Date(),
      stdout: 'out',
    }),
  );
  await unary(client, client.recordNodeResults, { taskId, results: done });
  if (state !== RunState.RUN_STATE_RUNNING) await unary(client, client.updateRunState, { taskId, state, reason: '' });
  return taskId;
}

describe('resultsServiceSource (bolt_task data from a real results service)', () => {
  before(async () => {
    const main = join(packageRoot(), 'dist', 'services', 'results', 'main.js');
    results = await startChild(
      process.execPath,
      [main, '--insecure', '--listen', '127.0.0.1:0', '--log-level', 'warn', '--redis-url', redis.url, '--key-prefix', uniquePrefix()],
      { ready: LISTENING_LINE },
    );
    client = makeClient(ResultsServiceClient, LISTENING_LINE.exec(results.readyLine)![1]);
  });
  after(async () => {
    client.close();
    await results.stop();
  });

  it('selects the nodes a bolt_task term picks from the slim read of the run', async () => {
    const index = await fleet();
    const taskId = await runWith({ web1: 2, web2: 0 }, RunState.RUN_STATE_RUNNING);
    const runResults = resultsServiceSource(client);
    const pick = async (text: string) => (await runDiscovery(index, parseCompound(text), { runResults })).online;
    assert.deepEqual(await pick(`bolt_task('${taskId}').exitcode > 0`), ['web1']);
    assert.deepEqual(await pick(`bolt_task('${taskId}').exitcode == 0 and bolt_task('${taskId}').stdout == 'out'`), ['web2']);
    assert.deepEqual(await pick(`bolt_task('${taskId}').completed == true`), ['web1', 'web2']);
    // web3 has no result yet: pending, so known (it is in the run), but it matches no field.
    assert.deepEqual(await pick(`bolt_task('${taskId}').known == true and not bolt_task('${taskId}').completed == true`), ['web3']);
  });

  it("reuses a finished run's results for the cache lifetime only, and never those of a run still going", async () => {
    const index = await fleet();
    let nowMs = 1_000_000;
    const source = () => resultsServiceSource(client, { cacheTtlMs: 10_000, now: () => nowMs });
    const failed = async (taskId: string) => (await runDiscovery(index, parseCompound(`bolt_task('${taskId}').exitcode > 0`), { runResults: source() })).online;

    const finished = await runWith({ web1: 1, web2: 0, web3: 0 }, RunState.RUN_STATE_FAILED);
    assert.deepEqual(await failed(finished), ['web1']);
    // A late change of a finished run (as a late answer replacing NO_RESPONSE would be).
    await unary(client, client.recordNodeResults, {
      taskId: finished,
      results: [NodeResult.fromPartial({ host: 'web2', taskId: finished, state: NodeState.NODE_STATE_FAILED, completed: true, exitcode: 5 })],
    });
    nowMs += 9_000;
    assert.deepEqual(await failed(finished), ['web1'], 'within the lifetime: the cached answer');
    nowMs += 1_000;
    assert.deepEqual(await failed(finished), ['web1', 'web2'], 'after it: read again');

    const going = await runWith({ web1: 1 }, RunState.RUN_STATE_RUNNING);
    assert.deepEqual(await failed(going), ['web1']);
    await unary(client, client.recordNodeResults, {
      taskId: going,
      results: [NodeResult.fromPartial({ host: 'web3', taskId: going, state: NodeState.NODE_STATE_FAILED, completed: true, exitcode: 3 })],
    });
    assert.deepEqual(await failed(going), ['web1', 'web3'], 'a running run is read each time');
  });

  it('checks the answer itself, so a results service that predates where never widens a bolt_task term', async () => {
    const index = await fleet();
    const taskId = await runWith({ web1: 2, web2: 0, web3: 0 }, RunState.RUN_STATE_RUNNING);
    // The real service behind a client that drops `where`, as a service built before it (an
    // unknown field) ignores it and answers every node.
    const dropWhere: Interceptor = (options, next) =>
      new InterceptingCall(next(options), {
        sendMessage: (message: GetRunStatusRequest, send) =>
          send(message.resultFields ? { ...message, resultFields: { ...message.resultFields, where: '', hostsOnly: false } } : message),
      });
    const old = new ResultsServiceClient(LISTENING_LINE.exec(results.readyLine)![1], credentials.createInsecure(), { interceptors: [dropWhere] });
    try {
      const seen = await unary(old, old.getRunStatus, {
        taskId,
        resultFields: { fields: ['exitcode'], where: `bolt_task('${taskId}').exitcode > 0`, hostsOnly: false },
      });
      assert.equal(seen.items.length, 3, 'the where never reached the service');
      const runResults = resultsServiceSource(old);
      assert.deepEqual((await runDiscovery(index, parseCompound(`bolt_task('${taskId}').exitcode > 0`), { runResults })).online, ['web1']);
      assert.deepEqual((await runDiscovery(index, parseCompound(`bolt_task('${taskId}').known == false`), { runResults })).online, []);
    } finally {
      old.close();
    }
  });
});
