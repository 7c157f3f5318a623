import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NodeState, RunState } from '../../gen/baton/v1/run';
import { unary } from '../../lib/grpc-client';
import { RedisKeys } from '../../lib/redis';
import { keySlot } from '../../lib/redis-client';
import { startRedisCluster, type RedisProcess } from '../../lib/redis-cluster-server';
import { moveSlot } from '../../test/helpers/redis-cluster';
import { waitFor } from '../../test/helpers/wait';
import { createRun, finished, newRun, record, startResultsTestService, type ResultsTestService } from '../../test/helpers/results-service';

/**
 * A run's hash slot moves to another master of a real 3-master Redis Cluster while its results
 * are being recorded (whatever BATON_TEST_REDIS says): every result is kept, and no call fails.
 */
describe('a run whose slot moves during the run', () => {
  let cluster: RedisProcess;
  let t: ResultsTestService;
  before(async () => {
    cluster = await startRedisCluster();
    t = await startResultsTestService(cluster.url);
  });
  after(async () => {
    await t?.close();
    await cluster?.stop();
  });

  it('keeps every result recorded while the run keys migrate key by key, and the run ends SUCCEEDED', async () => {
    const hosts = Array.from({ length: 400 }, (_, i) => `node-${String(i).padStart(3, '0')}`);
    const run = await createRun(t, newRun(hosts));
    await unary(t.client, t.client.updateRunState, { taskId: run.taskId, state: RunState.RUN_STATE_RUNNING, reason: '' });
    const keys = new RedisKeys(t.prefix);
    const slot = keySlot(keys.run(run.taskId));

    // Three recorders send batches of 5 results, each one call after the other, until all are in.
    let sent = 0;
    let done = 0;
    const failures: string[] = [];
    const inFlight = new Set<number>();
    const recorder = async () => {
      while (sent < hosts.length) {
        const batch = hosts.slice(sent, sent + 5);
        const call = sent;
        sent += batch.length;
        inFlight.add(call);
        await record(
          t,
          run.taskId,
          batch.map((h) => finished(h, 0, 1)),
        ).catch((err: Error) => failures.push(err.message));
        inFlight.delete(call);
        done++;
      }
    };
    const recorders = Promise.all([recorder(), recorder(), recorder()]);
    // After each key moved, the calls then in flight are calls made while the run's keys were split
    // between two nodes. The next key moves once a call completed, or after a second: a call whose
    // keys are split (TRYAGAIN) completes only once the move goes on.
    const callsDuringMove = new Set<number>();
    const move = await moveSlot(cluster.ports, slot, async () => {
      for (const call of inFlight) callsDuringMove.add(call);
      const seen = done;
      await waitFor('a call to complete', () => done > seen || sent >= hosts.length, 1000).catch(() => undefined);
    });
    await recorders;

    assert.deepEqual(failures, [], 'no call failed (no MOVED, ASK, TRYAGAIN or CROSSSLOT reached a caller)');
    assert.ok(move.keys >= 6, `the run's keys moved one by one (${move.keys})`);
    assert.ok(callsDuringMove.size >= 2, `results were recorded while the keys were split between two nodes (${callsDuringMove.size} calls)`);
    const status = await unary(t.client, t.client.getRunStatus, { taskId: run.taskId });
    assert.equal(status.run?.state, RunState.RUN_STATE_SUCCEEDED);
    assert.equal(status.items.length, hosts.length);
    assert.ok(status.items.every((r) => r.state === NodeState.NODE_STATE_SUCCEEDED));
  });
});
