import { it } from 'node:test';
import assert from 'node:assert/strict';
import { NodeState, RunState } from '../../gen/baton/v1/run';
import { executions } from '../helpers/executions';
import {
  expectEachRanOnce,
  frozen,
  heldBy,
  holders,
  keys,
  newRun,
  NODES,
  runCount,
  runStatus,
  RUN_LEASE_S,
  SETTLE_MS,
  spread,
  takenOverBy,
  withFleet,
} from '../helpers/replica-fleet';
import { waitFor } from '../helpers/wait';

/**
 * The replica coordinating a run (the one that took RunTask) killed with SIGKILL, whole process
 * group, while another replica runs: the survivor, not a restart, takes the run over, and every
 * node runs the task exactly once (fleet: test/helpers/replica-fleet.ts). Each case is a test of
 * its own, with a fleet of its own.
 */

it('the coordinating replica killed during the download gate: the survivor gates again and runs the task once on every node', (t) =>
  withFleet(async (fleet) => {
    const held = await spread(fleet);
    // Replica 1 takes the run; one of its own agents is frozen, which holds the gate open.
    const stuck = heldBy(held, 1)[0];
    const before = new Set<string>();
    await frozen(fleet, stuck, async (thaw) => {
      const call = runCount(fleet, 1, 1).catch((err: Error) => err);
      const taskId = await newRun(fleet, before);
      await waitFor('the run to be DOWNLOADING', async () => (await runStatus(fleet, taskId)).run?.state === RunState.RUN_STATE_DOWNLOADING, SETTLE_MS, 50);
      await waitFor('the gate to be in Redis', async () => (await fleet.redis.hget(keys.runOrchestration(taskId), 'phase')) === 'GATE', SETTLE_MS, 50);
      const killedAt = Date.now();
      await fleet.stack.stopScheduler(1, 'SIGKILL');
      assert.ok((await call) instanceof Error, 'the RunTask call ended with its replica');
      thaw();
      await takenOverBy(fleet, taskId, 2);
      t.diagnostic(`taken over ${Date.now() - killedAt} ms after the kill (run lease ${RUN_LEASE_S} s)`);
      await expectEachRanOnce(fleet, taskId);
      assert.deepEqual(
        [...(await holders(fleet)).values()],
        NODES.map(() => 2),
        'every agent is on the survivor',
      );
    });
  }));

it('the coordinating replica killed during batch 2 of a batched run: the survivor re-sends batch 2 and sends the later batches, each node runs once', (t) =>
  withFleet(async (fleet) => {
    const held = await spread(fleet);
    // Batches go in the sorted discovery order, one node each. The run is taken by the replica
    // that does not hold the first node, whose result therefore lands on the other replica.
    const coordinator = held.get(NODES[0]) === 1 ? 2 : 1;
    const survivor = 3 - coordinator;
    const { taskId } = await runCount(fleet, coordinator, 1, { batchSize: 1 });
    const plan = JSON.parse((await fleet.redis.get(keys.runPlan(taskId))) ?? '[]') as string[];
    assert.deepEqual(plan, NODES);
    const firstDone = await waitFor(
      'batch 1 to end',
      async () => (await runStatus(fleet, taskId)).items.find((r) => r.host === plan[0])?.state === NodeState.NODE_STATE_SUCCEEDED && Date.now(),
      SETTLE_MS,
      25,
    );
    await waitFor('batch 2 to run', () => executions(fleet.log)[plan[1]] === 1, SETTLE_MS, 25);
    // The coordinator heard of batch 1's result from the replica that stored it, not at its
    // periodic status read (every 10 s).
    const gapMs = Date.now() - firstDone;
    assert.ok(gapMs < 5_000, `batch 2 started ${gapMs} ms after batch 1 ended on the other replica`);
    t.diagnostic(`batch 2 started ${gapMs} ms after batch 1 ended on the other replica`);
    assert.deepEqual(executions(fleet.log), { [plan[0]]: 1, [plan[1]]: 1 }, 'batch 3 waits for batch 2');
    const killedAt = Date.now();
    await fleet.stack.stopScheduler(coordinator, 'SIGKILL');
    await takenOverBy(fleet, taskId, survivor);
    t.diagnostic(`taken over ${Date.now() - killedAt} ms after the kill (run lease ${RUN_LEASE_S} s)`);
    await expectEachRanOnce(fleet, taskId);
  }));
