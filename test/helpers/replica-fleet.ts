import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { RedisClient } from '../../lib/redis-client';
import { ResultsServiceClient, type GetRunStatusResponse } from '../../gen/baton/v1/results_service';
import { NodeState, RunState } from '../../gen/baton/v1/run';
import { RunTaskRequest, SchedulerServiceClient } from '../../gen/baton/v1/scheduler_service';
import { DevStack } from '../../cli/dev-stack';
import { makeClient, unary } from '../../lib/grpc-client';
import { packageRoot } from '../../lib/package-root';
import { INDEX_CHUNK_NODES, indexChunkOf, RedisKeys } from '../../lib/redis';
import { isFinalRunState } from '../../lib/run-states';
import { executions } from './executions';
import { redisClientOf, testRedisIsCluster } from './redis';
import { waitFor } from './wait';

/**
 * A fleet for the replica failover tests (test/e2e/replica-failover*.test.ts), for real: redis-server, the metadata and results services,
 * two scheduler replicas running at the same time (each in a process group of its own) and four
 * agent processes, each given both replicas' addresses, running the real `once::count` fixture,
 * which appends a line per execution to a log so that every node's executions are counted. The
 * replica that coordinates a run (the one that took RunTask) is killed with SIGKILL, whole
 * process group, and the other one, running all along, takes the run over. Each case has a
 * fleet of its own, so that one case's dead replica never shapes the next; the cases are spread
 * over several files, each within the test runner's time limit per file.
 */

export const NODES = ['node1', 'node2', 'node3', 'node4'];
/** Short leases, so that a death shows and a run is taken over within a case. */
export const REPLICA_LEASE_S = 2;
export const RUN_LEASE_S = 2;
/** Long enough that no agent of a killed replica, reconnecting, is ever counted lost. */
export const AGENT_LOST_AFTER_S = 20;
/** Generous: several processes share two cores. */
export const SETTLE_MS = 60_000;
/** The most a dead replica's agents may take to be online on a survivor. */
export const AGENTS_BACK_WITHIN_MS = 15_000;

export const keys = new RedisKeys('baton');

/** One fleet: the stack, a client of each replica (1-based), of the results service and of Redis. */
export interface Fleet {
  stack: DevStack;
  replicas: SchedulerServiceClient[];
  results: ResultsServiceClient;
  redis: RedisClient;
  /** The execution log of a run: `<state dir>/count.log`. */
  log: string;
}

/** Starts a fleet (replica lease `replicaLeaseS`, default REPLICA_LEASE_S), runs `body` with it, and stops everything it started, whatever happens. */
export async function withFleet(body: (fleet: Fleet) => Promise<void>, options: { replicaLeaseS?: number } = {}): Promise<void> {
  const stack = await DevStack.start({
    redisCluster: testRedisIsCluster(),
    agents: NODES.length,
    schedulers: 2,
    environmentpath: join(packageRoot(), 'test', 'fixtures', 'modules'),
    logLevel: process.env.BATON_E2E_LOGS ?? 'warn',
    onStderr: (name, line) => {
      if (process.env.BATON_E2E_LOGS) process.stderr.write(`[${name}] ${line}\n`);
    },
    serviceArgs: {
      scheduler: [
        '--replica-lease-s',
        String(options.replicaLeaseS ?? REPLICA_LEASE_S),
        '--run-lease-s',
        String(RUN_LEASE_S),
        '--agent-lost-after-s',
        String(AGENT_LOST_AFTER_S),
      ],
    },
  });
  const fleet: Fleet = {
    stack,
    replicas: stack.addresses.schedulers.map((a) => makeClient(SchedulerServiceClient, a)),
    results: makeClient(ResultsServiceClient, stack.addresses.results),
    redis: redisClientOf(stack.addresses.redis),
    log: join(stack.stateDir, 'count.log'),
  };
  try {
    await body(fleet);
  } finally {
    for (const c of fleet.replicas) c.close();
    fleet.results.close();
    await fleet.redis.quit();
    await stack.stop();
  }
}

/** The client of replica `i` (1-based). */
export const replica = (fleet: Fleet, i: number): SchedulerServiceClient => fleet.replicas[i - 1];

/** The live replica id of replica `i` (`scheduler-<i>-<epoch>`), read from the leases on the Redis clock. */
export async function replicaId(fleet: Fleet, i: number): Promise<string | undefined> {
  const [seconds] = await fleet.redis.time();
  const live = await fleet.redis.zrangebyscore(keys.replicaLeases(), Number(seconds) * 1000, '+inf');
  return live.filter((id) => id.startsWith(`scheduler-${i}-`)).sort((a, b) => Number(b.split('-').pop()) - Number(a.split('-').pop()))[0];
}

/**
 * Which replica (1 or 2) holds each node, from Redis: the node's bit in that replica's owner
 * bitmap, which must agree with the `owner` in the node's hash. A node held by no live replica,
 * or by both, is absent.
 */
export async function holders(fleet: Fleet): Promise<Map<string, number>> {
  const ids = [await replicaId(fleet, 1), await replicaId(fleet, 2)];
  const held = new Map<string, number>();
  for (const node of NODES) {
    const nodeId = await fleet.redis.hget(keys.nodeIds(), node);
    if (nodeId === null) continue;
    const chunk = indexChunkOf(Number(nodeId));
    const bit = Number(nodeId) - chunk * INDEX_CHUNK_NODES;
    const owners: number[] = [];
    for (const [k, id] of ids.entries()) if (id && (await fleet.redis.getbit(keys.ownerBitmap(chunk, id), bit)) === 1) owners.push(k + 1);
    const owner = await fleet.redis.hget(keys.node(chunk, node), 'owner');
    if (owners.length === 1 && owner === ids[owners[0] - 1]) held.set(node, owners[0]);
  }
  return held;
}

/** The nodes replica `i` holds, by the owner bitmaps. */
export function heldBy(held: Map<string, number>, i: number): string[] {
  return NODES.filter((n) => held.get(n) === i);
}

/**
 * Waits until every node is held by one replica and each replica holds at least one (agents
 * pick a replica at random; the replicas rebalance a fleet that landed on one), and returns who
 * holds what.
 */
export function spread(fleet: Fleet): Promise<Map<string, number>> {
  return waitFor(
    'the agents to be spread over both replicas',
    async () => {
      const held = await holders(fleet);
      return held.size === NODES.length && heldBy(held, 1).length > 0 && heldBy(held, 2).length > 0 ? held : undefined;
    },
    SETTLE_MS,
    100,
  );
}

/** `once::count` on every node through replica `through`; resolves when RunTask answers (after the gate, with `background`). */
export function runCount(fleet: Fleet, through: number, seconds: number, extra: Partial<RunTaskRequest> = {}) {
  const client = replica(fleet, through);
  return unary(
    client,
    client.runTask,
    RunTaskRequest.fromPartial({
      task: 'once::count',
      inputJson: JSON.stringify({ seconds, log: fleet.log }),
      background: true,
      filter: { identities: NODES },
      ...extra,
    }),
    { deadlineMs: SETTLE_MS * 2 },
  );
}

export const runStatus = (fleet: Fleet, taskId: string): Promise<GetRunStatusResponse> => unary(fleet.results, fleet.results.getRunStatus, { taskId });

/** The run of once::count started after `before` (task ids seen then), once it exists. */
export async function newRun(fleet: Fleet, before: Set<string>): Promise<string> {
  const run = await waitFor(
    'the run to be created',
    async () =>
      (await unary(fleet.results, fleet.results.listRuns, { pageSize: 10, pageToken: '', task: 'once::count' })).runs.find((r) => !before.has(r.taskId)),
    SETTLE_MS,
    50,
  );
  return run.taskId;
}

/** Waits for the run to reach a final state (none is left DOWNLOADING or RUNNING) and returns its status. */
export function finalStatus(fleet: Fleet, taskId: string): Promise<GetRunStatusResponse> {
  return waitFor(
    `run ${taskId} to end`,
    async () => {
      const s = await runStatus(fleet, taskId);
      return s.run && isFinalRunState(s.run.state) ? s : undefined;
    },
    SETTLE_MS,
    100,
  );
}

/**
 * True once no scheduler holds orchestration state for the run: no entry in the active set and
 * none of its keys (the command with its input among them).
 */
export async function coordinationOver(fleet: Fleet, taskId: string): Promise<boolean> {
  return (
    (await fleet.redis.zscore(keys.activeRuns(), taskId)) === null &&
    (await fleet.redis.exists(keys.runOrchestration(taskId), keys.runLease(taskId), keys.runPlan(taskId), keys.runCommand(taskId))) === 0
  );
}

/**
 * Waits until the run's orchestration state names replica `i` as its coordinator, at a fencing
 * epoch past the first: it was taken over by that replica.
 */
export function takenOverBy(fleet: Fleet, taskId: string, i: number): Promise<true> {
  return waitFor(
    `replica ${i} to take run ${taskId} over`,
    async () => {
      const [coordinator, epoch] = await fleet.redis.hmget(keys.runOrchestration(taskId), 'coordinator', 'epoch');
      const id = await replicaId(fleet, i);
      return id !== undefined && coordinator === id && Number(epoch) > 1;
    },
    SETTLE_MS,
    25,
  );
}

/** Every node SUCCEEDED, each ran the task exactly once, and the coordination is over. */
export async function expectEachRanOnce(fleet: Fleet, taskId: string): Promise<void> {
  const status = await finalStatus(fleet, taskId);
  assert.deepEqual(
    status.items.map((r) => [r.host, NodeState[r.state], r.statusmsg]),
    NODES.map((n) => [n, 'NODE_STATE_SUCCEEDED', '']),
  );
  assert.equal(status.run?.state, RunState.RUN_STATE_SUCCEEDED);
  assert.deepEqual(executions(fleet.log), Object.fromEntries(NODES.map((n) => [n, 1])), 'every node ran the task exactly once');
  await waitFor('the coordination to end', () => coordinationOver(fleet, taskId), SETTLE_MS, 100);
}

/** Pauses an agent process (SIGSTOP) for `body`, and lets it go on (SIGCONT) afterwards, whatever happens. */
export async function frozen<T>(fleet: Fleet, node: string, body: (thaw: () => void) => Promise<T>): Promise<T> {
  const pid = fleet.stack.agentPid(node);
  assert.ok(pid, `the agent process of ${node}`);
  process.kill(pid, 'SIGSTOP');
  let thawed = false;
  const thaw = () => {
    if (thawed) return;
    thawed = true;
    process.kill(pid, 'SIGCONT');
  };
  try {
    return await body(thaw);
  } finally {
    thaw();
  }
}
