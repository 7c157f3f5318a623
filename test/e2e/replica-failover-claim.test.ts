import { it } from 'node:test';
import assert from 'node:assert/strict';
import { expectEachRanOnce, frozen, heldBy, keys, replicaId, runCount, SETTLE_MS, spread, withFleet } from '../helpers/replica-fleet';
import { waitFor } from '../helpers/wait';

/**
 * A dispatch entry read and not acknowledged by a replica that is then killed: a survivor claims
 * it (XAUTOCLAIM) and answers it (fleet: test/helpers/replica-fleet.ts).
 */

it('has the survivor claim a dispatch entry the killed replica had read and not acknowledged, and answer it', () =>
  withFleet(async (fleet) => {
    const held = await spread(fleet);
    // Replica 1 coordinates; replica 2 reads the download entry for its nodes and waits for
    // them, one of which is frozen: the entry stays read and not acknowledged.
    const stuck = heldBy(held, 2)[0];
    const victim = await replicaId(fleet, 2);
    assert.ok(victim);
    const stream = keys.replicaDispatch(victim);
    const startedAt = Date.now();
    const gate = await frozen(fleet, stuck, async (thaw) => {
      const call = runCount(fleet, 1, 0);
      await waitFor(
        'replica 2 to have read the download entry',
        async () => {
          const [count, , , consumers] = (await fleet.redis.xpending(stream, 'dispatch')) as [number, string, string, Array<[string, string]> | null];
          return count === 1 && consumers?.[0]?.[0] === victim;
        },
        SETTLE_MS,
        25,
      );
      await fleet.stack.stopScheduler(2, 'SIGKILL');
      thaw();
      return call;
    });
    const gateMs = Date.now() - startedAt;
    // The gate passed: the survivor claimed the entry and sent the download to the nodes,
    // which had reconnected to it; otherwise the coordinator would have waited for the whole
    // download timeout (60 s) and failed the frozen node.
    assert.ok(gateMs < 30_000, `the gate passed ${gateMs} ms after the run started`);
    await expectEachRanOnce(fleet, gate.taskId);
    // Once nothing of it is left, the dead replica is forgotten: its lease entry and its stream.
    await waitFor('the dead replica to be forgotten', async () => (await fleet.redis.exists(stream)) === 0 && (await fleet.redis.zscore(keys.replicaLeases(), victim)) === null, SETTLE_MS, 100);
  }));
