import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import type { RedisClient as Redis } from '../../lib/redis-client';
import { RunState } from '../../gen/baton/v1/run';
import { unary } from '../../lib/grpc-client';
import { RedisKeys } from '../../lib/redis';
import { newTaskId } from '../../lib/task-id';
import { callsBetween, redisBooks, useRedisServer } from '../../test/helpers/redis';
import {
  createRun,
  finished,
  grpcError,
  newRun,
  nodeResult,
  record,
  startResultsTestService,
  type ResultsTestService,
} from '../../test/helpers/results-service';

/**
 * GetRunProgress, what a coordinator follows its runs with: the run's state, how many nodes are
 * final and which of some hosts are, at a cost that Redis's own books show does not grow with
 * the run.
 */

const redisServer = useRedisServer();
let t: ResultsTestService;
let redis: Redis;

const hostsOf = (count: number) => Array.from({ length: count }, (_, i) => `node-${String(i).padStart(5, '0')}`);
const progress = (taskId: string, hosts: string[] = []) => unary(t.client, t.client.getRunProgress, { taskId, hosts });
const running = async (hosts: string[]) => {
  const run = await createRun(t, newRun(hosts));
  await unary(t.client, t.client.updateRunState, { taskId: run.taskId, state: RunState.RUN_STATE_RUNNING, reason: '' });
  return run;
};

/** Redis bytes sent and commands run per GetRunProgress asking about `asked` hosts, in a run of `nodes` nodes with 3 final. */
async function trafficPerCall(nodes: number, asked: number, calls: number): Promise<{ output: number; commands: Record<string, number> }> {
  const hosts = hostsOf(nodes);
  const run = await running(hosts);
  await record(t, run.taskId, [finished(hosts[0], 0, 1), finished(hosts[1], 1, 1), finished(hosts[2], 0, 1), nodeResult(hosts[3])]);
  const first = await redisBooks(redis);
  const second = await redisBooks(redis); // what one reading itself costs
  for (let i = 0; i < calls; i++) assert.equal((await progress(run.taskId, hosts.slice(0, asked))).finalNodes, 3);
  const third = await redisBooks(redis);
  return { output: (third.output - second.output - (second.output - first.output)) / calls, commands: callsBetween(second.calls, third.calls) };
}

describe('GetRunProgress', () => {
  before(async () => {
    t = await startResultsTestService(redisServer.url);
    redis = redisServer.client();
  });
  after(async () => {
    await t.close();
  });

  it("tells the run's state, its node count, how many nodes are final and which of the given hosts are", async () => {
    const hosts = hostsOf(5);
    const run = await running(hosts);
    await record(t, run.taskId, [finished(hosts[0], 0, 1), finished(hosts[3], 1, 2), nodeResult(hosts[1])]);
    const got = await progress(run.taskId, [hosts[4], hosts[3], hosts[1], 'not-a-node', hosts[0]]);
    assert.deepEqual(got, { state: RunState.RUN_STATE_RUNNING, nodes: 5, finalNodes: 2, finalHosts: [hosts[3], hosts[0]] });

    await record(t, run.taskId, [finished(hosts[1], 0, 1), finished(hosts[2], 0, 1), finished(hosts[4], 0, 1)]);
    assert.deepEqual(await progress(run.taskId), { state: RunState.RUN_STATE_FAILED, nodes: 5, finalNodes: 5, finalHosts: [] });
  });

  it('answers for a run created before runs had headers, and NOT_FOUND for a run that does not exist', async () => {
    const hosts = hostsOf(3);
    const run = await running(hosts);
    await record(t, run.taskId, [finished(hosts[2], 0, 1)]);
    await redis.del(new RedisKeys(t.prefix).runHeader(run.taskId));
    assert.deepEqual(await progress(run.taskId, hosts), { state: RunState.RUN_STATE_RUNNING, nodes: 3, finalNodes: 1, finalHosts: [hosts[2]] });

    const missing = await grpcError(progress(newTaskId()));
    assert.equal(missing.code, status.NOT_FOUND);
    const malformed = await grpcError(progress('not-a-task-id'));
    assert.equal(malformed.code, status.INVALID_ARGUMENT);
  });

  it('reads the same Redis bytes and commands in a run of 20,000 nodes as in one of 10', async () => {
    for (const asked of [0, 10]) {
      const small = await trafficPerCall(10, asked, 20);
      const big = await trafficPerCall(20_000, asked, 20);
      assert.deepEqual(big.commands, small.commands, `the same commands per call asking about ${asked} hosts`);
      assert.equal(small.commands.evalsha, 20, 'one script call per request');
      for (const whole of ['get', 'hgetall', 'hvals', 'smembers', 'xrange']) assert.equal(small.commands[whole], undefined, `no ${whole}`);
      // The reply differs only by the digits of the node count (10 against 20000).
      assert.ok(
        Math.abs(big.output - small.output) <= 4,
        `Redis sent ${big.output} bytes per call at 20,000 nodes, ${small.output} at 10 (asking about ${asked} hosts)`,
      );
    }
  });
});
