import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RedisClient as Redis } from '../../lib/redis-client';
import IORedis from 'ioredis';
import { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { NodeResult, NodeState, RunState } from '../../gen/baton/v1/run';
import { RunTaskRequest, SchedulerServiceClient } from '../../gen/baton/v1/scheduler_service';
import { makeClient, unary } from '../../lib/grpc-client';
import { packageRoot } from '../../lib/package-root';
import { RedisKeys } from '../../lib/redis';
import { useDevStack } from '../helpers/dev-stack';
import { callsBetween, redisBooks } from '../helpers/redis';
import { waitFor } from '../helpers/wait';

/**
 * A coordinator follows its run in the results service when the run's results reach it another
 * way (as they do from another replica's agents): real redis-server, services and two agents
 * running the real `runs::sleep` fixture, the scheduler checking every second. The test itself
 * plays the other replica, recording the nodes' results straight into the results service while
 * their tasks still sleep.
 */

const NODES = ['node1', 'node2'];
/** Generous: several helpers share two cores. */
const SETTLE_MS = 60_000;

describe('a coordinated run whose results arrive another way', () => {
  const fleet = useDevStack({
    agents: NODES.length,
    environmentpath: join(packageRoot(), 'test', 'fixtures', 'modules'),
    serviceArgs: { scheduler: ['--run-refresh-s', '1'] },
  });
  let scheduler: SchedulerServiceClient;
  let results: ResultsServiceClient;
  let redis: Redis;
  let pidDir = '';
  const keys = new RedisKeys('baton');

  before(() => {
    scheduler = makeClient(SchedulerServiceClient, fleet.stack.addresses.scheduler);
    results = makeClient(ResultsServiceClient, fleet.stack.addresses.results);
    redis = new IORedis(fleet.stack.addresses.redis);
    pidDir = mkdtempSync(join(tmpdir(), 'baton-refresh-'));
  });
  after(async () => {
    // The tasks sleep for minutes: end them (the pid each wrote is its sleep's).
    for (const pid of readdirSync(pidDir)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // ended already
      }
    }
    scheduler.close();
    results.close();
    await redis.quit();
    rmSync(pidDir, { recursive: true, force: true });
  });

  const nodeState = async (taskId: string, host: string) => (await unary(results, results.getRunStatus, { taskId })).items.find((r) => r.host === host)?.state;
  const succeeded = (taskId: string, host: string) =>
    NodeResult.fromPartial({
      host,
      taskId,
      state: NodeState.NODE_STATE_SUCCEEDED,
      exitcode: 0,
      completed: true,
      runtime: 1,
      startTime: new Date(),
      stdout: '{}',
    });

  it('sends the next batch and ends, reading only its progress (never the whole run) while it waits', async () => {
    const started = await unary(
      scheduler,
      scheduler.runTask,
      RunTaskRequest.fromPartial({ task: 'runs::sleep', inputJson: JSON.stringify({ seconds: 300, pid_dir: pidDir }), batchSize: 1, background: true }),
      { deadlineMs: SETTLE_MS },
    );
    const { taskId } = started;
    await waitFor('node1 to run the task', async () => (await nodeState(taskId, 'node1')) === NodeState.NODE_STATE_RUNNING, SETTLE_MS, 100);

    // node1's result reaches the results service without passing through the coordinator.
    await unary(results, results.recordNodeResults, { taskId, results: [succeeded(taskId, 'node1')] });
    await waitFor('the second batch (node2) to run the task', async () => (await nodeState(taskId, 'node2')) === NodeState.NODE_STATE_RUNNING, SETTLE_MS, 100);

    // The coordinator now waits for node2 and knows every final node: its checks read the run's
    // progress (SCARD of the final set, in GetRunProgress's script) and nothing that holds every
    // node (the record: GET; results and briefs: HGETALL, HVALS). Nothing else reads the run meanwhile.
    const before = await redisBooks(redis);
    const calls = await waitFor(
      'three progress checks',
      async () => {
        const c = callsBetween(before.calls, (await redisBooks(redis)).calls);
        return (c.scard ?? 0) >= 3 ? c : undefined;
      },
      SETTLE_MS,
      200,
    );
    for (const whole of ['get', 'hgetall', 'hvals', 'smembers', 'xrange'])
      assert.equal(calls[whole], undefined, `${whole} was called ${calls[whole]} times: ${JSON.stringify(calls)}`);
    assert.ok(await redis.exists(keys.runOrchestration(taskId)), 'the run is still coordinated');

    await unary(results, results.recordNodeResults, { taskId, results: [succeeded(taskId, 'node2')] });
    await waitFor(
      'the coordinator to see the run end and remove its state',
      async () => (await redis.exists(keys.runOrchestration(taskId))) === 0,
      SETTLE_MS,
      100,
    );
    const status = await unary(results, results.getRunStatus, { taskId });
    assert.equal(status.run?.state, RunState.RUN_STATE_SUCCEEDED);
    assert.equal(readdirSync(pidDir).length, 2, 'each node ran the task once');
  });
});
