import { it } from 'node:test';
import assert from 'node:assert/strict';
import { expectEachRanOnce, heldBy, holders, keys, newRun, NODES, runCount, SETTLE_MS, withFleet, type Fleet } from '../helpers/replica-fleet';
import { waitFor } from '../helpers/wait';

/**
 * A lease long enough for a frozen agent sent away by the rebalancer to be thawed, wait its
 * retry delay and reach the other replica within it, on a loaded machine.
 */
const LEASE_S = 4;

/**
 * The rebalancer sends an agent to the other replica while the run's download gate waits for
 * that agent's answer (fleet: test/helpers/replica-fleet.ts). Replica 2 is stopped so that every
 * agent is on replica 1, then started again: replica 1 is then above its fair share (3 of 4
 * agents) and, once the replicas have been the same for two leases, ends one agent's stream.
 * Every agent is frozen meanwhile, so that the gate's downloads are all unanswered when it does.
 * The node must be waited for where its agent reconnects and get the download there, not fail
 * the gate as not answering.
 */

/** Pauses every agent process (SIGSTOP) for `body`, and lets them go on (SIGCONT) afterwards, whatever happens. */
async function allFrozen<T>(fleet: Fleet, body: (thaw: () => void) => Promise<T>): Promise<T> {
  const pids = NODES.map((n) => {
    const pid = fleet.stack.agentPid(n);
    assert.ok(pid, `the agent process of ${n}`);
    return pid;
  });
  for (const pid of pids) process.kill(pid, 'SIGSTOP');
  let thawed = false;
  const thaw = () => {
    if (thawed) return;
    thawed = true;
    for (const pid of pids) process.kill(pid, 'SIGCONT');
  };
  try {
    return await body(thaw);
  } finally {
    thaw();
  }
}

for (const through of [1, 2]) {
  const how = through === 1 ? 'the coordinator itself' : 'a replica that got the gate through its dispatch stream';
  it(`runs the task once on every node when ${how} sends a node to another replica during the download gate`, (t) =>
    withFleet(
      async (fleet) => {
        await waitFor('every agent to be held by a replica', async () => (await holders(fleet)).size === NODES.length, SETTLE_MS, 100);
        await fleet.stack.stopScheduler(2, 'SIGTERM');
        await waitFor('every agent to be held by replica 1', async () => heldBy(await holders(fleet), 1).length === NODES.length, SETTLE_MS, 100);
        await fleet.stack.startScheduler(2);
        const taskId = await allFrozen(fleet, async (thaw) => {
          const call = runCount(fleet, through, 0);
          const id = await newRun(fleet, new Set());
          await waitFor(
            'the run to be in its download gate',
            async () => (await fleet.redis.hget(keys.runOrchestration(id), 'phase')) === 'GATE',
            SETTLE_MS,
            25,
          );
          const startedAt = Date.now();
          await waitFor('replica 1 to send an agent away', async () => heldBy(await holders(fleet), 1).length < NODES.length, SETTLE_MS, 25);
          t.diagnostic(`replica 1 sent an agent away ${Date.now() - startedAt} ms into the gate`);
          assert.equal(await fleet.redis.hget(keys.runOrchestration(id), 'phase'), 'GATE', 'the agent was sent away during the gate');
          thaw();
          await call;
          return id;
        });
        await expectEachRanOnce(fleet, taskId);
        assert.ok(heldBy(await holders(fleet), 2).length > 0, 'the agent sent away is on replica 2');
      },
      { replicaLeaseS: LEASE_S },
    ));
}
