import { it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { NodeState, RunState } from '../../gen/baton/v1/run';
import { unary } from '../../lib/grpc-client';
import { executions } from '../helpers/executions';
import {
  AGENTS_BACK_WITHIN_MS,
  coordinationOver,
  expectEachRanOnce,
  finalStatus,
  heldBy,
  holders,
  keys,
  NODES,
  replica,
  runCount,
  runStatus,
  SETTLE_MS,
  spread,
  withFleet,
} from '../helpers/replica-fleet';
import { waitFor } from '../helpers/wait';

/**
 * A replica killed while no run goes on, and a cancel through the replica that does not
 * coordinate the run, with agents on both replicas (fleet: test/helpers/replica-fleet.ts).
 */

it("a replica killed while idle: the dead replica's agents are online on the survivor within 15 s", (t) =>
  withFleet(async (fleet) => {
    const held = await spread(fleet);
    const moving = heldBy(held, 1);
    const killedAt = Date.now();
    await fleet.stack.stopScheduler(1, 'SIGKILL');
    const survivor = replica(fleet, 2);
    await waitFor(
      'every agent to be online on the survivor, held by it',
      async () => {
        const found = await unary(survivor, survivor.discoverNodes, { includeOffline: true });
        const online = found.nodes
          .filter((n) => n.online)
          .map((n) => n.identity)
          .sort();
        return online.join() === NODES.join() && [...(await holders(fleet)).values()].filter((r) => r === 2).length === NODES.length;
      },
      SETTLE_MS,
      50,
    );
    const tookMs = Date.now() - killedAt;
    assert.ok(tookMs <= AGENTS_BACK_WITHIN_MS, `${moving.join(', ')} were online on the survivor ${tookMs} ms after the kill`);
    t.diagnostic(`${moving.join(', ')} online on the survivor ${tookMs} ms after the kill`);
    // And they work there: a run through the survivor reaches every one.
    const { taskId } = await runCount(fleet, 2, 0);
    await expectEachRanOnce(fleet, taskId);
  }));

it('stops every later batch when the non-coordinating replica cancels a run over agents on both replicas', () =>
  withFleet(async (fleet) => {
    await spread(fleet);
    const { taskId } = await runCount(fleet, 1, 5, { batchSize: 1 });
    const plan = JSON.parse((await fleet.redis.get(keys.runPlan(taskId))) ?? '[]') as string[];
    await waitFor('batch 1 to run', () => executions(fleet.log)[plan[0]] === 1, SETTLE_MS, 25);
    const other = replica(fleet, 2);
    const { nodes: signalled } = await unary(other, other.cancelRun, { taskId });
    // Each node is reached through the replica holding its stream.
    assert.deepEqual(signalled, NODES);
    const ended = await finalStatus(fleet, taskId);
    assert.equal(ended.run?.state, RunState.RUN_STATE_CANCELLED);
    assert.deepEqual(
      ended.items.filter((r) => r.host !== plan[0]).map((r) => [r.host, NodeState[r.state], r.statusmsg]),
      plan
        .slice(1)
        .sort()
        .map((n) => [n, 'NODE_STATE_CANCELLED', 'cancelled before the task started on this node']),
    );
    await waitFor(
      `${plan[0]} to be stopped`,
      async () => (await runStatus(fleet, taskId)).items.find((r) => r.host === plan[0])?.state === NodeState.NODE_STATE_CANCELLED,
      SETTLE_MS,
      100,
    );
    await waitFor('the coordination to end', () => coordinationOver(fleet, taskId), SETTLE_MS, 100);
    // The coordinator would have sent batch 2 as soon as batch 1 ended, had it not seen the flag.
    assert.deepEqual(executions(fleet.log), { [plan[0]]: 1 }, 'no later batch ran');
    for (const n of plan.slice(1)) assert.equal(existsSync(join(fleet.stack.agentDir(n), 'spool', taskId)), false, `${n} never got the run command`);
  }));
