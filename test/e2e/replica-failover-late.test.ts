import { it } from 'node:test';
import assert from 'node:assert/strict';
import { executions } from '../helpers/executions';
import { expectEachRanOnce, frozen, heldBy, keys, newRun, replicaId, runCount, SETTLE_MS, spread, withFleet } from '../helpers/replica-fleet';
import { waitFor } from '../helpers/wait';

/** A lease long enough for the frozen agent's way back to fit in it on a loaded machine. */
const LEASE_S = 6;

/**
 * A node whose replica dies between the download gate and the run command, and whose agent is
 * still on its way to a survivor when the command goes out (fleet: test/helpers/replica-fleet.ts):
 * the coordinator waits for it, up to a lease period, instead of recording it NO_RESPONSE.
 */
it("sends the run command to a node whose replica's lease ended after the gate, once its agent is back on the survivor", () =>
  withFleet(
    async (fleet) => {
      const held = await spread(fleet);
      // Replica 1 coordinates; one of its agents, frozen, holds the gate open. Replica 2 answers
      // the download for its nodes, then dies while one of its agents is frozen.
      const gateHolder = heldBy(held, 1)[0];
      const late = heldBy(held, 2)[0];
      const victim = await replicaId(fleet, 2);
      assert.ok(victim);
      let taskId = '';
      await frozen(fleet, gateHolder, async (thawGate) => {
        const call = runCount(fleet, 1, 0);
        taskId = await newRun(fleet, new Set());
        await waitFor('replica 2 to answer the download for its nodes', async () => (await fleet.redis.xlen(keys.runReplies(taskId))) > 0, SETTLE_MS, 25);
        await frozen(fleet, late, async (thawLate) => {
          await fleet.stack.stopScheduler(2, 'SIGKILL');
          await waitFor(
            "replica 2's lease to end",
            async () => {
              const ends = await fleet.redis.zscore(keys.replicaLeases(), victim);
              return ends === null || Number(ends) < Date.now();
            },
            SETTLE_MS,
            50,
          );
          // The gate passes; the run command finds the frozen agent's node connected nowhere.
          thawGate();
          await waitFor(`the run command to reach ${gateHolder}`, () => executions(fleet.log)[gateHolder] === 1, SETTLE_MS, 25);
          thawLate();
        });
        await call;
      });
      await expectEachRanOnce(fleet, taskId);
    },
    { replicaLeaseS: LEASE_S },
  ));
