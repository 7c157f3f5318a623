import { it } from 'node:test';
import assert from 'node:assert/strict';
import { executions } from '../helpers/executions';
import { expectEachRanOnce, frozen, heldBy, keys, NODES, replicaId, runCount, SETTLE_MS, spread, withFleet } from '../helpers/replica-fleet';
import { waitFor } from '../helpers/wait';

/**
 * Dispatch entries in flight when their replica goes: one read and not acknowledged by a replica
 * that is then killed, which a survivor claims (XAUTOCLAIM) and answers; one that reaches a
 * replica as it drains (fleet: test/helpers/replica-fleet.ts).
 */

it('has the survivor claim a dispatch entry the killed replica had read and not acknowledged, and answer it', (t) =>
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
    t.diagnostic(`the gate passed ${gateMs} ms after the run started (download timeout 60 s)`);
    await expectEachRanOnce(fleet, gate.taskId);
    // Once nothing of it is left, the dead replica is forgotten: its lease entry and its stream.
    await waitFor(
      'the dead replica to be forgotten',
      async () => (await fleet.redis.exists(stream)) === 0 && (await fleet.redis.zscore(keys.replicaLeases(), victim)) === null,
      SETTLE_MS,
      100,
    );
  }));

it('loses no node of a run whose run command reaches a replica as it drains: the nodes get it where their agents reconnect', () =>
  withFleet(async (fleet) => {
    const held = await spread(fleet);
    // Batches of one in the sorted discovery order. The draining replica holds a node of a
    // later batch (the first one it holds after the first batch); the other coordinates.
    const later = NODES.slice(1).find((n) => held.get(n) !== held.get(NODES[0])) ?? NODES[1];
    const draining = held.get(later)!;
    const coordinator = 3 - draining;
    const k = NODES.indexOf(later);
    const victim = await replicaId(fleet, draining);
    assert.ok(victim);
    const stream = keys.replicaDispatch(victim);
    const pid = fleet.stack.schedulerPid(draining);
    assert.ok(pid);
    const { taskId } = await runCount(fleet, coordinator, 0, { batchSize: 1 });
    await waitFor(`batch ${k} to run`, () => executions(fleet.log)[NODES[k - 1]] === 1, SETTLE_MS, 10);
    // The replica is paused until batch k's run command is in its stream, then told to stop:
    // it drains (its agents' streams end first) with the entry in hand.
    process.kill(pid, 'SIGSTOP');
    try {
      await waitFor(`batch ${k + 1}'s run command to be posted to the paused replica`, async () => (await fleet.redis.xlen(stream)) > 0, SETTLE_MS, 10);
      process.kill(pid, 'SIGTERM');
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await fleet.stack.stopScheduler(draining, 'SIGTERM');
    await expectEachRanOnce(fleet, taskId);
  }));
