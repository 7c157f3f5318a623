import type { RedisClient as Redis } from '../lib/redis-client';
import { NodeResult, NodeState, RunState } from '../gen/baton/v1/run';
import { unary } from '../lib/grpc-client';
import { startRedisServer } from '../lib/redis-server';
import { newTaskId } from '../lib/task-id';
import { startResultsTestService, type ResultsTestService } from '../test/helpers/results-service';

/**
 * The cost of RecordNodeResults as the run grows: a real results service over gRPC and a real
 * redis-server, runs of 1,000, 10,000 and 100,000 nodes (BATON_BENCH_RECORD_SIZES to change).
 * Per size and repeat: a RUNNING run is created, then CALLS one-result calls (as a scheduler
 * recording TaskStarted one node at a time) are timed one by one, and BATCH_SIZE results are
 * recorded in one call. Printed: median wall time per one-result call (client and service in
 * this process, so it includes both ends of the gRPC call), wall time per result of the batch,
 * and Redis bytes sent to the service per result (INFO stats total_net_output_bytes:
 * deterministic, unlike time).
 *
 * Goals: recording costs the same whatever the run's size: the median per call at the largest
 * size within MAX_GROWTH of the smallest size's, and the same Redis bytes per result (within
 * one byte).
 */

const SIZES = (process.env.BATON_BENCH_RECORD_SIZES ?? '1000,10000,100000').split(',').map(Number);
const REPEATS = Number(process.env.BATON_BENCH_RECORD_REPEATS ?? 3);
const CALLS = 50;
const BATCH_SIZE = 500;
/** Deadline of the CreateRun of a run to measure, in ms. */
const CREATE_DEADLINE_MS = 120_000;
/** Largest allowed ratio of the per-call median at the largest size to the smallest size's. */
const MAX_GROWTH = 1.5;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function outputBytes(redis: Redis): Promise<number> {
  return Number(/^total_net_output_bytes:(\d+)/m.exec(await redis.info('stats'))?.[1]);
}

/** One repeat at one size: ms per one-result call (median), ms per result in a batch, Redis bytes per result. */
async function measure(t: ResultsTestService, nodes: number): Promise<{ callMs: number; batchMsPerResult: number; bytesPerResult: number }> {
  const hosts = Array.from({ length: nodes }, (_, i) => `node-${String(i).padStart(6, '0')}`);
  const run = {
    taskId: newTaskId(),
    task: 'acme::deploy',
    environment: 'production',
    caller: 'user=bench',
    state: RunState.RUN_STATE_UNSPECIFIED,
    nodes: hosts,
    filter: undefined,
    inputJson: '{}',
    createTime: undefined,
    endTime: undefined,
    error: '',
    noop: false,
    requestId: '',
  };
  // Creating a 100,000-node run is one big write (every node's pending result): not measured, and given time on a busy machine.
  await unary(t.client, t.client.createRun, { run }, { deadlineMs: CREATE_DEADLINE_MS });
  await unary(t.client, t.client.updateRunState, { taskId: run.taskId, state: RunState.RUN_STATE_RUNNING, reason: '' });
  const started = (host: string) => NodeResult.fromPartial({ host, state: NodeState.NODE_STATE_RUNNING, exitcode: -1, startTime: new Date() });
  const record = (results: NodeResult[]) => unary(t.client, t.client.recordNodeResults, { taskId: run.taskId, results });
  await record([started(hosts[nodes - 1])]); // warms up the service for this run
  const times: number[] = [];
  const first = await outputBytes(t.redis);
  const before = await outputBytes(t.redis);
  const perReading = before - first; // what one INFO reply itself adds
  for (let i = 0; i < CALLS; i++) {
    const t0 = process.hrtime.bigint();
    await record([started(hosts[i])]);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const bytesPerResult = ((await outputBytes(t.redis)) - before - perReading) / CALLS;
  const batch = hosts.slice(CALLS, CALLS + BATCH_SIZE).map(started);
  const t0 = process.hrtime.bigint();
  await record(batch);
  const batchMsPerResult = Number(process.hrtime.bigint() - t0) / 1e6 / batch.length;
  return { callMs: median(times), batchMsPerResult, bytesPerResult };
}

async function main(): Promise<void> {
  const server = await startRedisServer();
  const t = await startResultsTestService(server.url);
  const rows: Array<{ nodes: number; callMs: number; batchMsPerResult: number; bytesPerResult: number }> = [];
  try {
    for (const nodes of SIZES) {
      const runs = [];
      for (let r = 0; r < REPEATS; r++) runs.push(await measure(t, nodes));
      const row = {
        nodes,
        callMs: median(runs.map((x) => x.callMs)),
        batchMsPerResult: median(runs.map((x) => x.batchMsPerResult)),
        bytesPerResult: median(runs.map((x) => x.bytesPerResult)),
      };
      rows.push(row);
      console.log(
        `nodes ${String(nodes).padStart(7)}: RecordNodeResults ${row.callMs.toFixed(3)} ms per one-result call (median of ${REPEATS} medians of ${CALLS}), ` +
          `${row.batchMsPerResult.toFixed(4)} ms per result in a batch of ${BATCH_SIZE}, Redis sent ${row.bytesPerResult.toFixed(1)} bytes per result`,
      );
    }
  } finally {
    await t.close();
    await server.stop();
  }
  const first = rows[0];
  const last = rows[rows.length - 1];
  const growth = last.callMs / first.callMs;
  const goals = [
    { text: `per-call median at ${last.nodes} nodes within ${MAX_GROWTH}x of ${first.nodes} nodes: ${growth.toFixed(2)}x`, met: growth <= MAX_GROWTH },
    {
      text: `Redis bytes per result constant: ${first.bytesPerResult.toFixed(1)} at ${first.nodes}, ${last.bytesPerResult.toFixed(1)} at ${last.nodes}`,
      met: Math.abs(last.bytesPerResult - first.bytesPerResult) <= 1,
    },
  ];
  for (const goal of goals) console.log(`goal ${goal.met ? 'met' : 'MISSED'}: ${goal.text}`);
  if (goals.some((g) => !g.met)) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
