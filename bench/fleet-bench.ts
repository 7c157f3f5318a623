import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { GetRunStatusRequest, ResultsServiceClient } from '../gen/baton/v1/results_service';
import { NodeState, RunState } from '../gen/baton/v1/run';
import { RunTaskRequest, SchedulerServiceClient } from '../gen/baton/v1/scheduler_service';
import { makeClient, unary } from '../lib/grpc-client';
import { isFinalRunState } from '../lib/run-states';
import {
  DEFAULT_HEARTBEAT_INTERVAL_MAX_S,
  DEFAULT_HEARTBEAT_INTERVAL_S,
  DEFAULT_HEARTBEATS_PER_S,
  heartbeatIntervalFor,
} from '../services/scheduler/heartbeat-interval';
import {
  BenchStack,
  callsPerNode,
  cpuDelta,
  ORCHESTRATION,
  redisTraffic,
  runBenchmark,
  TASK,
  total,
  writeTaskModule,
  type PerProcess,
  type RedisTraffic,
} from './fleet/bench-stack';
import { envCount, envSizes, median, ms, type Goals } from './fleet/goals';
import { printProfiles } from './fleet/cpu-profile-summary';
import { raiseOpenFileLimit, rssBytes } from './fleet/proc-stats';
import { fleetCounts, runState } from './fleet/sim-fleet';
import { WorkerProcess } from './fleet/worker-process';

/**
 * The fleet benchmark: what orchestration costs per node when the nodes cost nothing. Simulated
 * agents (bench/fleet/sim-agents.ts: the real Connect protocol, one TCP connection each, many
 * per process, commands answered in-process and every execution counted per task id) connect
 * to a dev stack (redis-server, metadata, results and scheduler as separate processes); a run
 * of the trivial task on every node is started in the background with RunTask and followed
 * until every node's result is acknowledged and GetRunProgress shows the run final. Sizes grow on
 * the same stack (the agents of a smaller size stay connected); per size one warm-up run, then
 * RUNS measured ones, medians reported.
 *
 * Per run: wall time; orchestration CPU per node (utime+stime from /proc of scheduler,
 * results, metadata and redis-server over the run, divided by the nodes; heartbeats arriving
 * meanwhile included, as in a real fleet); Redis bytes read per node result (INFO stats
 * total_net_output_bytes delta) and Redis calls per node (INFO commandstats deltas). After each
 * run, outside the measurement, every node must have executed the task id exactly once and the
 * full GetRunStatus must show every node SUCCEEDED. Per size also the idle cost (orchestration
 * CPU over one heartbeat interval with nothing running) and the scheduler's resident memory per
 * connected agent.
 *
 * Environment: BATON_FLEET_SIZES (default 1000,10000,100000), BATON_FLEET_RUNS (measured runs
 * per size, default 3; a size of fewer nodes gets enough for MIN_MEASURED_RESULTS), BATON_FLEET_RUN_TIMEOUT_S (per run; default 60 s + 3 ms per node),
 * BATON_FLEET_AGENTS_PER_CONNECTION (default 1: one TCP connection per agent, as real agents),
 * BATON_FLEET_HEARTBEAT_MAX_S (the scheduler's heartbeat-interval-max-s; default unset: the
 * scheduler's default, DEFAULT_HEARTBEAT_INTERVAL_MAX_S; 10 keeps every agent at 10 s). Intervals
 * grow with the agents the scheduler holds, and each size's idle cost is measured over the
 * longest interval it gives them.
 * BATON_BENCH_PROFILE=DIR writes CPU profiles of the scheduler and results service over the runs
 * of the largest size to DIR and prints where their CPU went (figures inflated by the profiler).
 * The open-file limit is raised to what the largest size needs (root, or a high `ulimit -n`).
 */

const DEFAULT_SIZES = [1_000, 10_000, 100_000];
/** Processes hosting the simulated agents. */
const WORKERS = 4;
const DEFAULT_RUNS = 3;
/**
 * Node results each size's measured runs add up to at least: a size with fewer nodes gets more
 * runs than RUNS (10 at 1,000). A 1,000-node run lasts about half a second, so one garbage
 * collection or one clock tick of a process moves its CPU figure by a good part of itself, and a
 * median of three such runs can land far from the size's typical run; it is the base the growth
 * goal divides by. Larger runs average that out within themselves.
 */
const MIN_MEASURED_RESULTS = 10_000;
/** The goals: orchestration CPU per node at 1,000 and at 100,000, and its growth between them. */
const GOAL_CPU_MS_PER_NODE = 1;
const GOAL_CPU_SIZES = [1_000, 100_000];
const GOAL_CPU_GROWTH = 1.2;
/** Redis bytes read per node result may not grow with N beyond this factor over the smallest size. */
const GOAL_REDIS_GROWTH = 1.2;
/** Scheduler memory per connected agent. */
const GOAL_BYTES_PER_AGENT = 40 * 1024;
/** Fewest agents the memory figure is taken over: below it the process's own growth dominates. */
const MEMORY_GOAL_MIN_AGENTS = 10_000;
/** Deadline of the full status read after a run, in ms. */
const FULL_STATUS_DEADLINE_MS = 120_000;
/** How often the benchmark asks the workers how far a run got, in ms. */
const POLL_MS = 200;
/** Open files each process needs besides its agents' connections. */
const SPARE_FILES = 4_096;

const identity = (i: number) => `sim${String(i).padStart(6, '0')}.bench`;
const sleep = (t: number) => new Promise((resolve) => setTimeout(resolve, t));
const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;

/** One measured run. */
interface RunFigures {
  wallMs: number;
  cpu: PerProcess;
  redis: RedisTraffic;
  /** Agent streams that ended during the run (the agents reconnected), and why the last did. */
  streamsEnded: number;
  endedExample?: string;
}

/** One size: its runs, or why it could not be measured. */
interface SizeFigures {
  nodes: number;
  connectMs: number;
  idleCpuMsPerNodePerS: number;
  schedulerRssBytes: number;
  runs: RunFigures[];
  failed?: string;
}

/**
 * One run on every node, measured from just before RunTask until the run is final: every
 * node's result acknowledged (the workers count the ResultAcks) and the run final in
 * GetRunProgress. Throws, naming what was missing, when it is not final within `timeoutMs`.
 */
async function measureRun(
  bench: BenchStack,
  scheduler: SchedulerServiceClient,
  results: ResultsServiceClient,
  workers: WorkerProcess[],
  nodes: number,
  timeoutMs: number,
): Promise<RunFigures> {
  const endedBefore = (await fleetCounts(workers, '')).streamsEnded;
  const redisBefore = await bench.redisCounters();
  const cpuBefore = bench.cpuMs();
  const t0 = performance.now();
  const deadline = t0 + timeoutMs;
  // With a request id: the client retries a RunTask whose connection broke (UNAVAILABLE, e.g. a
  // keepalive that timed out while the scheduler was busy), and a retry must answer with the
  // first run instead of starting a second one on every node.
  const request = RunTaskRequest.fromPartial({ task: TASK, background: true, requestId: randomUUID() });
  const started = await unary(scheduler, scheduler.runTask, request, { deadlineMs: timeoutMs });
  const taskId = started.taskId;
  let counts = await fleetCounts(workers, taskId);
  while (counts.acked < nodes) {
    if (performance.now() > deadline) {
      const streams =
        counts.streamsEnded > endedBefore
          ? `; ${counts.streamsEnded - endedBefore} agent streams ended meanwhile, ${counts.disconnected} agents not connected now (last: ${counts.endedExample})`
          : '';
      throw new Error(
        `run ${taskId} not final within ${ms(timeoutMs)}: ${counts.acked} of ${nodes} results acknowledged, ${counts.once + counts.repeated} nodes received the run command${streams}`,
      );
    }
    await sleep(POLL_MS);
    counts = await fleetCounts(workers, taskId);
  }
  let state = await runState(results, taskId, deadline);
  while (!isFinalRunState(state)) {
    if (performance.now() > deadline)
      throw new Error(`run ${taskId}: every result acknowledged but the run is still ${RunState[state]} after ${ms(timeoutMs)}`);
    await sleep(POLL_MS);
    state = await runState(results, taskId, deadline);
  }
  const wallMs = performance.now() - t0;
  const cpu = cpuDelta(cpuBefore, bench.cpuMs());
  const redis = redisTraffic(redisBefore, await bench.redisCounters());
  // Checked outside the measurement: every node final and succeeded, and exactly one execution
  // per node (counted again after the full read, so a late second run command shows too).
  const status = await unary(results, results.getRunStatus, GetRunStatusRequest.fromPartial({ taskId }), { deadlineMs: FULL_STATUS_DEADLINE_MS });
  const succeeded = status.items.filter((r) => r.state === NodeState.NODE_STATE_SUCCEEDED).length;
  if (status.run?.state !== RunState.RUN_STATE_SUCCEEDED || status.items.length !== nodes || succeeded !== nodes) {
    throw new Error(`run ${taskId}: ${RunState[status.run?.state ?? 0]} with ${status.items.length} node results, ${succeeded} succeeded (of ${nodes})`);
  }
  counts = await fleetCounts(workers, taskId);
  if (counts.once !== nodes || counts.never !== 0 || counts.repeated !== 0) {
    throw new Error(`run ${taskId}: ${counts.once} nodes executed the task once, ${counts.never} never, ${counts.repeated} more than once (of ${nodes})`);
  }
  const streamsEnded = counts.streamsEnded - endedBefore;
  return { wallMs, cpu, redis, streamsEnded, endedExample: streamsEnded > 0 ? counts.endedExample : undefined };
}

async function measureSizes(
  bench: BenchStack,
  workers: WorkerProcess[],
  sizes: number[],
  runs: number,
  perConnection: number,
  profile: boolean,
  heartbeatMaxS: number,
): Promise<{ figures: SizeFigures[]; rssBeforeBytes: number }> {
  const scheduler = makeClient(SchedulerServiceClient, bench.schedulerAddress);
  const results = makeClient(ResultsServiceClient, bench.stack.addresses.results);
  const rssBeforeBytes = rssBytes(bench.pids.scheduler);
  const figures: SizeFigures[] = [];
  let connected = 0;
  try {
    for (const nodes of sizes) {
      const size: SizeFigures = { nodes, connectMs: NaN, idleCpuMsPerNodePerS: NaN, schedulerRssBytes: NaN, runs: [] };
      figures.push(size);
      const timeoutMs = envCount('BATON_FLEET_RUN_TIMEOUT_S', Math.ceil(60 + nodes * 0.003)) * 1000;
      try {
        const t0 = performance.now();
        const fresh = Array.from({ length: nodes - connected }, (_, i) => identity(connected + i + 1));
        await Promise.all(
          workers.map((w, k) =>
            w.request({
              type: 'start',
              addresses: [bench.schedulerAddress],
              identities: fresh.filter((_, i) => i % WORKERS === k),
              agentsPerConnection: perConnection,
              localAddressBase: `127.${k + 1}.0`,
            }),
          ),
        );
        connected = nodes;
        size.connectMs = performance.now() - t0;
        // Over the longest interval the scheduler gives this many agents: every agent heard once.
        const idleWindowMs =
          heartbeatIntervalFor(nodes, { baseS: DEFAULT_HEARTBEAT_INTERVAL_S, maxS: heartbeatMaxS, heartbeatsPerS: DEFAULT_HEARTBEATS_PER_S }) * 1000;
        size.idleCpuMsPerNodePerS = total(await bench.idleCpu(nodes, idleWindowMs));
        size.schedulerRssBytes = rssBytes(bench.pids.scheduler);
        const retried = (await fleetCounts(workers, '')).streamsEnded;
        const retries = retried > 0 ? ` (${retried} streams ended or failed to connect so far and were retried)` : '';
        const measured = Math.max(runs, Math.ceil(MIN_MEASURED_RESULTS / nodes));
        console.log(`  ${nodes} agents connected in ${ms(size.connectMs)}${retries}; a warm-up run, then ${measured} measured (each given ${ms(timeoutMs)})`);
        if (profile && nodes === sizes[sizes.length - 1]) for (const pid of [bench.pids.scheduler, bench.pids.results]) process.kill(pid, 'SIGUSR2');
        for (let r = 0; r <= measured; r++) {
          const run = await measureRun(bench, scheduler, results, workers, nodes, timeoutMs);
          if (r > 0) size.runs.push(run);
          console.log(
            `    ${r === 0 ? 'warm-up' : `run ${r}`}: ${ms(run.wallMs)}, orchestration CPU ${(total(run.cpu) / nodes).toFixed(3)} ms/node, Redis ${(run.redis.outputBytes / nodes).toFixed(0)} B read/node` +
              (run.streamsEnded > 0 ? `; ${run.streamsEnded} agent streams ended and reconnected (last: ${run.endedExample})` : ''),
          );
        }
      } catch (err) {
        // Agents that missed a run hold it unfinished: larger sizes would inherit that, so the benchmark stops here.
        size.failed = err instanceof Error ? err.message : String(err);
        console.log(`  ${nodes} nodes: ${size.failed}; larger sizes skipped`);
        break;
      }
    }
  } finally {
    scheduler.close();
    results.close();
  }
  return { figures, rssBeforeBytes };
}

/**
 * What the connected fleet cost over a run whether or not the run went on, in ms per node: the
 * size's idle rate (heartbeats, keepalives, timers) times the run's wall time. A run twice as
 * long costs twice this, so at a fixed throughput it grows with N although no result costs more.
 */
function backgroundMsPerNode(f: SizeFigures, r: RunFigures): number {
  return f.idleCpuMsPerNodePerS * (r.wallMs / 1000);
}

function report(figures: SizeFigures[], sizes: number[], rssBeforeBytes: number, goals: Goals): void {
  const pad = (s: string, n: number) => s.padEnd(n);
  console.log('');
  console.log(
    `${pad('nodes', 8)}${pad('wall', 10)}${pad('orch CPU/node', 15)}${pad('sched/results/meta/redis', 28)}${pad('idle CPU/node/s', 17)}${pad('background/node', 17)}${pad('run own/node', 14)}${pad('Redis B read/node', 19)}Redis calls/node`,
  );
  const perNode = new Map<number, { cpu: number; own: number; bytes: number }>();
  for (const f of figures) {
    if (f.runs.length === 0) {
      console.log(`${pad(String(f.nodes), 8)}not measured: ${f.failed ?? 'no runs'}`);
      continue;
    }
    const per = (k: (typeof ORCHESTRATION)[number]) => median(f.runs.map((r) => r.cpu[k] / f.nodes));
    const cpu = median(f.runs.map((r) => total(r.cpu) / f.nodes));
    const background = median(f.runs.map((r) => backgroundMsPerNode(f, r)));
    const own = median(f.runs.map((r) => total(r.cpu) / f.nodes - backgroundMsPerNode(f, r)));
    const bytes = median(f.runs.map((r) => r.redis.outputBytes / f.nodes));
    if (!f.failed) perNode.set(f.nodes, { cpu, own, bytes });
    console.log(
      `${pad(String(f.nodes), 8)}${pad(ms(median(f.runs.map((r) => r.wallMs))), 10)}${pad(`${cpu.toFixed(3)} ms`, 15)}${pad(ORCHESTRATION.map((k) => per(k).toFixed(3)).join('/'), 28)}` +
        `${pad(`${(f.idleCpuMsPerNodePerS * 1000).toFixed(1)} µs`, 17)}${pad(`${background.toFixed(3)} ms`, 17)}${pad(`${own.toFixed(3)} ms`, 14)}${pad(bytes.toFixed(0), 19)}${callsPerNode(f.runs[f.runs.length - 1].redis, f.nodes)}`,
    );
  }
  console.log('  (medians of the measured runs; CPU per node = utime+stime of the process over the run / nodes; idle = with nothing running, heartbeats only;');
  console.log(
    "   background = the idle rate over the run's wall time, what the connected fleet costs whether a run goes on or not; run own = CPU/node - background)",
  );

  const failedAt = figures.find((f) => f.failed);
  const missing = (n: number) => (failedAt && n >= failedAt.nodes ? `the run at ${failedAt.nodes} nodes did not finish` : undefined);
  for (const f of figures) {
    goals.check(
      `every node final, the task executed exactly once per node, in every run at ${f.nodes} nodes`,
      f.failed ? f.failed : `${f.runs.length + 1} runs`,
      !f.failed,
    );
  }
  for (const n of GOAL_CPU_SIZES) {
    const goal = `orchestration CPU <= ${GOAL_CPU_MS_PER_NODE} ms per node at ${n} nodes`;
    const got = perNode.get(n);
    if (got) goals.check(goal, `${got.cpu.toFixed(3)} ms`, got.cpu <= GOAL_CPU_MS_PER_NODE);
    else if (!sizes.includes(n)) goals.skipped(goal, `${n} not in BATON_FLEET_SIZES`);
    else goals.notMeasured(goal, missing(n) ?? 'no figure');
  }
  const [small, large] = GOAL_CPU_SIZES;
  const growthGoal = `orchestration CPU per node at ${large} within ${GOAL_CPU_GROWTH}x of ${small}`;
  const a = perNode.get(small);
  const b = perNode.get(large);
  const ownGoal = `orchestration CPU per node of the run itself (background subtracted) at ${large} within ${GOAL_CPU_GROWTH}x of ${small}`;
  if (a && b) {
    goals.check(growthGoal, `${(b.cpu / a.cpu).toFixed(2)}x`, b.cpu <= GOAL_CPU_GROWTH * a.cpu);
    goals.check(ownGoal, `${(b.own / a.own).toFixed(2)}x (${a.own.toFixed(3)} ms, ${b.own.toFixed(3)} ms)`, b.own <= GOAL_CPU_GROWTH * a.own);
  } else if (!sizes.includes(small) || !sizes.includes(large)) {
    goals.skipped(growthGoal, `needs ${small} and ${large} in BATON_FLEET_SIZES`);
    goals.skipped(ownGoal, `needs ${small} and ${large} in BATON_FLEET_SIZES`);
  } else {
    goals.notMeasured(growthGoal, missing(large) ?? missing(small) ?? 'no figure');
    goals.notMeasured(ownGoal, missing(large) ?? missing(small) ?? 'no figure');
  }

  goals.constantInN(
    'Redis bytes read per node result',
    [...perNode].map(([n, v]) => [n, v.bytes]),
    GOAL_REDIS_GROWTH,
    'B',
    failedAt && `the run at ${failedAt.nodes} nodes did not finish`,
  );

  const memoryGoal = `scheduler memory <= ${GOAL_BYTES_PER_AGENT / 1024} KB per connected agent at ${MEMORY_GOAL_MIN_AGENTS} agents or more`;
  const largest = [...figures].reverse().find((f) => Number.isFinite(f.schedulerRssBytes));
  if (!largest || largest.nodes < MEMORY_GOAL_MIN_AGENTS) goals.skipped(memoryGoal, `needs a size of ${MEMORY_GOAL_MIN_AGENTS} or more connected`);
  else {
    const perAgent = (largest.schedulerRssBytes - rssBeforeBytes) / largest.nodes;
    goals.check(
      memoryGoal,
      `${kb(perAgent)} at ${largest.nodes} (RSS ${(rssBeforeBytes / 2 ** 20).toFixed(0)} MB before, ${(largest.schedulerRssBytes / 2 ** 20).toFixed(0)} MB with every agent connected, after a heartbeat interval)`,
      perAgent <= GOAL_BYTES_PER_AGENT,
    );
  }
}

runBenchmark('fleet-bench', async (dir, goals) => {
  const sizes = envSizes('BATON_FLEET_SIZES', DEFAULT_SIZES, WORKERS);
  const runs = envCount('BATON_FLEET_RUNS', DEFAULT_RUNS);
  const perConnection = envCount('BATON_FLEET_AGENTS_PER_CONNECTION', 1);
  const heartbeatMaxS = envCount('BATON_FLEET_HEARTBEAT_MAX_S', DEFAULT_HEARTBEAT_INTERVAL_MAX_S, DEFAULT_HEARTBEAT_INTERVAL_S);
  const openFiles = raiseOpenFileLimit(Math.ceil(Math.max(...sizes) / perConnection) + SPARE_FILES);
  const { environmentpath } = writeTaskModule(dir);
  console.log(
    `fleet benchmark: ${TASK} on every node, simulated agents (real Connect protocol, commands answered in-process) in ${WORKERS} processes, ` +
      `${perConnection === 1 ? 'one TCP connection per agent' : `${perConnection} agents per TCP connection`}; sizes ${sizes.join(', ')}; ` +
      `a warm-up and ${runs} measured runs per size (more below ${MIN_MEASURED_RESULTS} nodes: ${MIN_MEASURED_RESULTS} node results at least); open-file limit ${openFiles}; ` +
      (heartbeatMaxS > DEFAULT_HEARTBEAT_INTERVAL_S
        ? `heartbeat intervals growing with the agents held, ${DEFAULT_HEARTBEAT_INTERVAL_S} s to ${heartbeatMaxS} s`
        : `heartbeats every ${DEFAULT_HEARTBEAT_INTERVAL_S} s`),
  );
  const profileDir = process.env.BATON_BENCH_PROFILE;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  // NODE_OPTIONS refuses --cpu-prof: a preloaded module runs the same profiler (bench/fleet/cpu-profile-preload.ts).
  const nodeOptions = profileDir ? `--require ${join(__dirname, 'fleet', 'cpu-profile-preload.js')}` : undefined;
  // The profiles cover the runs of the largest size: profiling starts once its agents are connected.
  if (profileDir) process.env.BATON_BENCH_PROFILE_ON_SIGNAL = '1';
  const serviceArgs = { scheduler: ['--heartbeat-interval-max-s', String(heartbeatMaxS)] };
  const bench = await BenchStack.start(environmentpath, { nodeOptions, serviceArgs });
  const workers = Array.from({ length: WORKERS }, (_, k) => WorkerProcess.start(`sim-agents-${k + 1}`, join(__dirname, 'fleet', 'sim-agents.js')));
  try {
    const { figures, rssBeforeBytes } = await measureSizes(bench, workers, sizes, runs, perConnection, profileDir !== undefined, heartbeatMaxS);
    report(figures, sizes, rssBeforeBytes, goals);
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await bench.stop();
  }
  if (profileDir) printProfiles(profileDir, bench.pids, ['scheduler', 'results']);
});
