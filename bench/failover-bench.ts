import { mkdirSync } from 'node:fs';
import { cpus, setPriority } from 'node:os';
import { join } from 'node:path';
import { GetRunStatusRequest, ResultsServiceClient } from '../gen/baton/v1/results_service';
import { NodeState, RunState } from '../gen/baton/v1/run';
import { RunTaskRequest, SchedulerServiceClient } from '../gen/baton/v1/scheduler_service';
import { makeClient, unary } from '../lib/grpc-client';
import { isFinalRunState } from '../lib/run-states';
import { fairShare } from '../services/scheduler/agent-shedder';
import { runBenchmark, TASK, writeTaskModule } from './fleet/bench-stack';
import { printProfiles } from './fleet/cpu-profile-summary';
import { envCount, ms, type Goals } from './fleet/goals';
import { cpuTimeMs, raiseOpenFileLimit } from './fleet/proc-stats';
import { ReplicaStack, type Replica } from './fleet/replica-stack';
import type { Rewelcomes } from './fleet/sim-agents';
import { endReasonsBetween, fleetCounts, runState } from './fleet/sim-fleet';
import { WorkerProcess } from './fleet/worker-process';

/**
 * The failover benchmark: scheduler replicas losing one of their number under a fleet. A stack
 * of real processes (redis-server, metadata, results, REPLICAS scheduler replicas each in a
 * process group of its own, with a short replica and run lease) and N simulated agents
 * (bench/fleet/sim-agents.ts: the real Connect protocol, many streams per connection and per
 * process), each given every replica's address in its own shuffled order and reconnecting as
 * the real agent does (next address, or the same after a refused Hello; backoff; the scheduler's
 * retry delay honoured), running
 * each task id at most once as the real agent's spool makes sure.
 *
 * Measured: the time to register every agent; agents per replica; the replicas' resident memory
 * per agent and Redis's used memory per node. Then one run of the trivial task on every node,
 * started through one replica, each node's task ending after a random time up to TASK_MS; once
 * half the results are acknowledged, a replica is killed with SIGKILL of its process group. In
 * the first scenario it is one that does not coordinate the run; in the second, on a second
 * run, the coordinating one. Per scenario: each agent of the killed replica's time from the
 * kill to its next Welcome (p50, p99, max), the time until another replica took the run over
 * (second scenario), the run's time to final, agents per replica after, and exactly-once counts:
 * every node SUCCEEDED in the results service, once each, and every node executed the task
 * exactly once (commands the scheduler sent again after the kill are counted apart).
 *
 * BATON_FAILOVER_AGENTS_NICE=N runs the simulated agents' processes at nice N from each kill
 * until its scenario ends: they stand for a fleet of separate machines, and on the one machine
 * the benchmark has, level with the replicas, Redis and the results service, they take much of
 * its two cores from the system measured (the replicas and Redis wait for a CPU longer than they
 * run). Niced, they still do all their work, and the time an agent waits for its own CPU to read
 * its Welcome is still counted; before the kill everything runs level, so the kill lands at the
 * same point of the run. Off by default, so figures compare with earlier ones.
 *
 * Goals (the exit code): per scenario the run ends, every node final and succeeded, each node's
 * task executed exactly once, p99 re-welcome <= GOAL_REWELCOME_P99_MS.
 *
 * Environment: BATON_FAILOVER_AGENTS (default 100000), BATON_FAILOVER_SCENARIOS (default
 * `replica,coordinator`), BATON_FAILOVER_LEASE_S (replica and run lease, default 10),
 * BATON_FAILOVER_TASK_MS (default 10000), BATON_FAILOVER_RUN_TIMEOUT_S (per run; default 120 s +
 * 4 ms per node), BATON_FLEET_AGENTS_PER_CONNECTION (default 25), BATON_FAILOVER_AGENTS_NICE
 * (above; default 0). BATON_BENCH_PROFILE=DIR writes
 * CPU profiles of the replicas to DIR and prints where the survivors' CPU went: from their start,
 * or, with BATON_BENCH_PROFILE_ON_SIGNAL=1, from the first kill on (the re-welcome storm and the
 * rest of the runs). BATON_BENCH_SLOWLOG=MS prints, after registration and after each
 * scenario, the Redis commands that held Redis longer than MS ms (SLOWLOG), longest first.
 */

const DEFAULT_AGENTS = 100_000;
const DEFAULT_REPLICAS = 4;
/** Processes hosting the simulated agents. */
const WORKERS = 4;
/** The replica and run lease: the scheduler's default (docs/replicas.md says why not shorter here). */
const DEFAULT_LEASE_S = 10;
const DEFAULT_PER_CONNECTION = 25;
/** Longest a simulated task runs, in ms: the kill lands while many nodes are still running theirs. */
const DEFAULT_TASK_MS = 10_000;
/** The simulated agents' nice value from each kill until the scenario ends (the file's comment says why): level by default. */
const DEFAULT_AGENTS_NICE = 0;
/** The share of results acknowledged when the replica is killed. */
const KILL_AT = 0.5;
const GOAL_REWELCOME_P99_MS = 15_000;
/**
 * The fleet is still before a run when every agent is welcomed and no replica holds more than
 * the share above which the scheduler's rebalancer sends agents away (`fairShare`), for longer
 * than the rebalancer's period; waited for at most SETTLE_TIMEOUT_MS.
 */
const SETTLED_FOR_MS = 6_000;
const SETTLE_TIMEOUT_MS = 180_000;
/** How often the benchmark asks how far things got, in ms. */
const POLL_MS = 250;
/** Deadline of the full status read after a run, in ms. */
const FULL_STATUS_DEADLINE_MS = 300_000;
/** Open files each process needs besides its agents' connections. */
const SPARE_FILES = 4_096;
const SCENARIOS = ['replica', 'coordinator'] as const;
type Scenario = (typeof SCENARIOS)[number];

const identity = (i: number) => `sim${String(i).padStart(6, '0')}.bench`;
const sleep = (t: number) => new Promise((resolve) => setTimeout(resolve, t));
const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`;

/** The value below which `p` of `sorted` lie (nearest rank). */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

/** With BATON_BENCH_SLOWLOG=MS: the commands that held Redis longer than MS ms since the last print. */
async function printSlowCommands(stack: ReplicaStack, when: string): Promise<void> {
  if (!process.env.BATON_BENCH_SLOWLOG) return;
  const lines = await stack.slowCommands(12);
  console.log(`  Redis commands slower than ${process.env.BATON_BENCH_SLOWLOG} ms ${when}: ${lines.length === 0 ? 'none' : ''}`);
  for (const line of lines) console.log(`    ${line}`);
}

/** Welcomed agents per replica name. */
async function placement(stack: ReplicaStack, workers: WorkerProcess[]): Promise<Map<string, number>> {
  const by = new Map(stack.live.map((r) => [r.name, 0]));
  for (const counts of await Promise.all(workers.map((w) => w.request<Record<string, number>>({ type: 'placement' })))) {
    for (const [address, n] of Object.entries(counts)) {
      const name = stack.replicas.find((r) => r.address === address)?.name ?? address;
      by.set(name, (by.get(name) ?? 0) + n);
    }
  }
  return by;
}

/** `r1 25010, r2 24990, ... (max 25010, mean 25000)`. */
function placementLine(by: Map<string, number>): string {
  const values = [...by.values()];
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  return `${[...by].map(([name, n]) => `${name} ${n}`).join(', ')} (max ${Math.max(...values)}, mean ${mean.toFixed(0)})`;
}

/**
 * Waits until the fleet is still (see SETTLED_FOR_MS); returns how long that took (undefined
 * when it was not still within SETTLE_TIMEOUT_MS) and the placement then.
 */
async function settle(stack: ReplicaStack, workers: WorkerProcess[], nodes: number): Promise<{ settledMs?: number; by: Map<string, number> }> {
  const t0 = performance.now();
  let stillSince: number | undefined;
  for (;;) {
    const by = await placement(stack, workers);
    const welcomed = [...by.values()].reduce((sum, n) => sum + n, 0);
    const still = welcomed === nodes && Math.max(...by.values()) <= fairShare(nodes, stack.live.length);
    const now = performance.now();
    stillSince = still ? (stillSince ?? now) : undefined;
    if (stillSince !== undefined && now - stillSince >= SETTLED_FOR_MS) return { settledMs: now - t0, by };
    if (now - t0 > SETTLE_TIMEOUT_MS) return { by };
    await sleep(POLL_MS * 4);
  }
}

/** What one scenario showed. */
interface ScenarioFigures {
  scenario: Scenario;
  victim: string;
  /** Its agents just before the kill. */
  victimAgents: number;
  rewelcomeMs: number[];
  /** Of the agents back, sorted: the time each spent waiting before its attempts (backoff, retry delays), and its attempts. */
  waitedMs: number[];
  attempts: number[];
  /** Sorted: when each of the killed replica's agents saw its stream end, ms after the kill. */
  noticedMs: number[];
  rewelcomePending: number;
  /** CPU used from the kill until every agent was back, in ms, by process kind; and that wall time. */
  rewelcomeCpuMs?: Record<string, number>;
  /** Over the same time, the main threads' run-queue wait (runnable, given no CPU), in ms, by process kind. */
  rewelcomeQueueWaitMs?: Record<string, number>;
  rewelcomeWallMs?: number;
  /** Streams that ended or attempts that failed from the kill on, and how many of them carried a retry delay. */
  endedAfterKill: number;
  retryDelaysAfterKill: number;
  /** Why they ended, the most frequent first. */
  endReasonsAfterKill: string;
  takeoverMs?: number;
  runMs?: number;
  /** Why the run did not end well, when it did not. */
  failed?: string;
  executedOnce: number;
  never: number;
  repeated: number;
  commandsRepeated: number;
  succeeded: number;
  recorded: number;
}

/** Sets the nice value of the simulated agents' processes (lowering it again needs privilege: said once when refused). */
function niceWorkers(workers: WorkerProcess[], nice: number): void {
  try {
    for (const w of workers) setPriority(w.child.pid!, nice);
  } catch (err) {
    console.log(`    could not set the simulated agents' nice value to ${nice}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * One run on every node through `through`; once KILL_AT of the results are acknowledged the
 * replica the scenario names is killed. Follows the killed replica's agents back, the takeover
 * and the run to its end (at most `timeoutMs` from the start), then counts.
 */
async function scenario(
  kind: Scenario,
  stack: ReplicaStack,
  through: Replica,
  results: ResultsServiceClient,
  workers: WorkerProcess[],
  nodes: number,
  timeoutMs: number,
  agentsNice: number,
): Promise<ScenarioFigures> {
  const scheduler = makeClient(SchedulerServiceClient, through.address);
  try {
    const t0 = performance.now();
    const deadline = t0 + timeoutMs;
    const { taskId } = await unary(scheduler, scheduler.runTask, RunTaskRequest.fromPartial({ task: TASK, background: true }), { deadlineMs: timeoutMs }).catch(
      (err: unknown) => {
        throw new Error(`RunTask through ${through.name} failed: ${err instanceof Error ? err.message : String(err)}`);
      },
    );
    // The replica that took RunTask coordinates the run; the stored coordinator (an id of that
    // process) changes when another replica takes the run over.
    const coordinator = await stack.coordinatorOf(taskId);
    if (!coordinator) throw new Error(`run ${taskId} has no coordinator in Redis right after RunTask`);
    const coordinating = through;

    let counts = await fleetCounts(workers, taskId);
    const atStart = counts;
    while (counts.acked < nodes * KILL_AT) {
      if (performance.now() > deadline)
        throw new Error(`run ${taskId}: ${counts.acked} of ${nodes} results acknowledged after ${ms(timeoutMs)}, before the kill`);
      await sleep(POLL_MS / 5);
      counts = await fleetCounts(workers, taskId);
    }
    // The non-coordinating replica killed is the one holding the most agents now.
    const held = await placement(stack, workers);
    const others = stack.live.filter((r) => r !== coordinating).sort((a, b) => (held.get(b.name) ?? 0) - (held.get(a.name) ?? 0));
    const victim = kind === 'coordinator' ? coordinating : others[0];
    if (!victim) throw new Error(`no replica to kill for the ${kind} scenario`);
    // The agents followed are those holding a stream to the victim when the workers start to
    // watch, counted by the workers then: agents that leave it between the placement above and
    // the watch (a replica ending the streams of its fence, or sending agents away) are neither
    // followed nor waited for.
    const watchedBy = await Promise.all(workers.map((w) => w.request<number>({ type: 'watch', address: victim.address })));
    const victimAgents = watchedBy.reduce((sum, n) => sum + n, 0);
    const atKill = counts;
    const cpuAt = (): Record<string, number> => ({ ...stack.cpuMs(), agents: workers.reduce((sum, w) => sum + cpuTimeMs(w.child.pid!), 0) });
    const killedAt = Date.now();
    const killedAtPerf = performance.now();
    if (agentsNice > 0) niceWorkers(workers, agentsNice);
    await stack.kill(victim);
    // Profiling from the kill on (BATON_BENCH_PROFILE_ON_SIGNAL): the survivors start now.
    if (process.env.BATON_BENCH_PROFILE && process.env.BATON_BENCH_PROFILE_ON_SIGNAL) for (const r of stack.live) r.child.child.kill('SIGUSR2');
    const cpuAtKill = cpuAt();
    const waitAtKill: Record<string, number> = stack.queueWaitMs();
    let rewelcomeCpuMs: Record<string, number> | undefined;
    let rewelcomeQueueWaitMs: Record<string, number> | undefined;
    let rewelcomeWallMs: number | undefined;
    // Streams that ended between the start and the kill: the fleet was not still (a replica that
    // fenced itself, agents sent away) and the kill is not the only event measured.
    const before = endReasonsBetween(atStart, atKill);
    if (before) console.log(`  ${kind}: before the kill, ${atKill.streamsEnded - atStart.streamsEnded} agent streams ended or attempts failed: ${before}`);
    console.log(
      `  ${kind}: killed ${victim.name} (${victimAgents} agents${victim === coordinating ? ', the coordinator' : `; ${coordinating.name} coordinates`}) at ${counts.acked} of ${nodes} results`,
    );

    // Not back: agents followed and not welcomed again, and agents still holding their stream to
    // the killed replica (their loss not noticed yet), each counted by its worker.
    let back: Rewelcomes = { delaysMs: [], waitedMs: [], attempts: [], noticedMs: [], pending: 0, holding: victimAgents };
    const notBack = () => back.pending + back.holding;
    let takeoverMs: number | undefined;
    let runMs: number | undefined;
    let failed: string | undefined;
    while (notBack() > 0 || (kind === 'coordinator' && takeoverMs === undefined) || runMs === undefined) {
      if (performance.now() > deadline) {
        failed = `not over within ${ms(timeoutMs)}: ${counts.acked} of ${nodes} results acknowledged, ${notBack()} agents not welcomed again${kind === 'coordinator' && takeoverMs === undefined ? ', the run not taken over' : ''}`;
        break;
      }
      if (notBack() > 0) {
        const all = await Promise.all(workers.map((w) => w.request<Rewelcomes>({ type: 'rewelcomed', since: killedAt })));
        back = {
          delaysMs: all.flatMap((r) => r.delaysMs),
          waitedMs: all.flatMap((r) => r.waitedMs),
          attempts: all.flatMap((r) => r.attempts),
          noticedMs: all.flatMap((r) => r.noticedMs),
          pending: all.reduce((s, r) => s + r.pending, 0),
          holding: all.reduce((s, r) => s + r.holding, 0),
        };
        if (notBack() === 0) {
          const now = cpuAt();
          rewelcomeCpuMs = Object.fromEntries(Object.entries(now).map(([k, v]) => [k, v - cpuAtKill[k]]));
          rewelcomeQueueWaitMs = Object.fromEntries(Object.entries(stack.queueWaitMs()).map(([k, v]) => [k, v - waitAtKill[k]]));
          rewelcomeWallMs = performance.now() - killedAtPerf;
        }
      }
      if (kind === 'coordinator' && takeoverMs === undefined) {
        const now = await stack.coordinatorOf(taskId);
        if (now !== coordinator) takeoverMs = performance.now() - killedAtPerf;
      }
      if (runMs === undefined) {
        counts = await fleetCounts(workers, taskId);
        if (counts.acked >= nodes && isFinalRunState(await runState(results, taskId, deadline))) runMs = performance.now() - t0;
      }
      await sleep(POLL_MS);
    }
    if (agentsNice > 0) niceWorkers(workers, 0);

    const status = await unary(results, results.getRunStatus, GetRunStatusRequest.fromPartial({ taskId }), { deadlineMs: FULL_STATUS_DEADLINE_MS });
    const hosts = new Set(status.items.map((r) => r.host));
    const succeeded = status.items.filter((r) => r.state === NodeState.NODE_STATE_SUCCEEDED).length;
    counts = await fleetCounts(workers, taskId);
    if (!failed && status.run?.state !== RunState.RUN_STATE_SUCCEEDED) failed = `the run ended ${RunState[status.run?.state ?? 0]}`;
    console.log(`    run ${taskId}: ${RunState[status.run?.state ?? 0]}, ${status.items.length} node results for ${hosts.size} nodes, ${succeeded} succeeded`);
    return {
      scenario: kind,
      victim: victim.name,
      victimAgents,
      rewelcomeMs: [...back.delaysMs].sort((a, b) => a - b),
      waitedMs: [...back.waitedMs].sort((a, b) => a - b),
      noticedMs: [...back.noticedMs].sort((a, b) => a - b),
      attempts: [...back.attempts].sort((a, b) => a - b),
      rewelcomePending: notBack(),
      rewelcomeCpuMs,
      rewelcomeQueueWaitMs,
      rewelcomeWallMs,
      endedAfterKill: counts.streamsEnded - atKill.streamsEnded,
      retryDelaysAfterKill: counts.retryDelays - atKill.retryDelays,
      endReasonsAfterKill: endReasonsBetween(atKill, counts),
      takeoverMs,
      runMs,
      failed,
      executedOnce: counts.once,
      never: counts.never,
      repeated: counts.repeated,
      commandsRepeated: counts.commandsRepeated,
      succeeded,
      recorded: hosts.size === status.items.length ? hosts.size : -status.items.length,
    };
  } finally {
    scheduler.close();
  }
}

/** Prints a scenario's figures and checks its goals. */
function report(f: ScenarioFigures, nodes: number, after: Map<string, number>, goals: Goals): void {
  const d = f.rewelcomeMs;
  const p99 = percentile(d, 0.99);
  console.log(
    `    re-welcome after the kill (${d.length} of the ${d.length + f.rewelcomePending} agents whose stream to ${f.victim} ended${f.rewelcomePending > 0 ? `, ${f.rewelcomePending} not back` : ''}): ` +
      `first ${ms(d[0] ?? NaN)}, p10 ${ms(percentile(d, 0.1))}, p50 ${ms(percentile(d, 0.5))}, p90 ${ms(percentile(d, 0.9))}, p99 ${ms(p99)}, max ${ms(d[d.length - 1] ?? NaN)}; ${f.endedAfterKill} streams ended or attempts failed from the kill on, ${f.retryDelaysAfterKill} with a retry delay`,
  );
  if (f.endReasonsAfterKill) console.log(`    why: ${f.endReasonsAfterKill}`);
  const n = f.noticedMs;
  console.log(`    the agents saw their stream end: first ${ms(n[0] ?? NaN)}, p50 ${ms(percentile(n, 0.5))}, max ${ms(n[n.length - 1] ?? NaN)} after the kill`);
  const w = f.waitedMs;
  const a = f.attempts;
  console.log(
    `    of which waiting before attempts (backoff, retry delays): p50 ${ms(percentile(w, 0.5))}, p99 ${ms(percentile(w, 0.99))}, max ${ms(w[w.length - 1] ?? NaN)}; ` +
      `attempts per agent p50 ${percentile(a, 0.5)}, p99 ${percentile(a, 0.99)}, max ${a[a.length - 1] ?? NaN}`,
  );
  if (f.rewelcomeCpuMs && f.rewelcomeWallMs !== undefined) {
    const cpu = f.rewelcomeCpuMs;
    const rate = d.length / ((d[d.length - 1] ?? NaN) / 1000);
    console.log(
      `    until every agent was back (${ms(f.rewelcomeWallMs)}, ${rate.toFixed(0)} agents/s): CPU s used by the surviving replicas ${(cpu.replicas / 1000).toFixed(1)}, ` +
        `agent workers ${(cpu.agents / 1000).toFixed(1)}, redis ${(cpu.redis / 1000).toFixed(1)}, results ${(cpu.results / 1000).toFixed(1)} (of ${((f.rewelcomeWallMs / 1000) * cpus().length).toFixed(1)} the machine's ${cpus().length} cores had)`,
    );
    const wait = f.rewelcomeQueueWaitMs;
    if (wait)
      console.log(
        `    meanwhile runnable but given no CPU (main threads' run-queue wait, s): surviving replicas ${(wait.replicas / 1000).toFixed(1)}, redis ${(wait.redis / 1000).toFixed(1)}, results ${(wait.results / 1000).toFixed(1)}`,
      );
  }
  if (f.scenario === 'coordinator') console.log(`    coordinator takeover: ${f.takeoverMs === undefined ? 'not seen' : `${ms(f.takeoverMs)} after the kill`}`);
  console.log(`    run final ${f.runMs === undefined ? 'never' : `after ${ms(f.runMs)}`}; agents per replica after: ${placementLine(after)}`);
  console.log(
    `    executed once ${f.executedOnce}, never ${f.never}, more than once ${f.repeated}; nodes sent the run command again after the kill (run once, result re-sent) ${f.commandsRepeated}`,
  );
  const what = `${f.scenario === 'coordinator' ? 'coordinating' : 'non-coordinating'} replica killed`;
  goals.check(`${what}: the run ends`, f.failed ?? `final after ${ms(f.runMs ?? NaN)}`, f.runMs !== undefined && !f.failed);
  goals.check(
    `${what}: every node final and succeeded, one result each`,
    `${f.succeeded} succeeded, ${f.recorded < 0 ? `${-f.recorded} results with repeated nodes` : `${f.recorded} nodes recorded`} (of ${nodes})`,
    f.succeeded === nodes && f.recorded === nodes,
  );
  goals.check(
    `${what}: every node executed the task exactly once`,
    `${f.executedOnce} once, ${f.never} never, ${f.repeated} more than once (of ${nodes})`,
    f.executedOnce === nodes && f.never === 0 && f.repeated === 0,
  );
  if (f.victimAgents === 0) goals.notMeasured(`${what}: p99 re-welcome <= ${ms(GOAL_REWELCOME_P99_MS)}`, `${f.victim} held no agents`);
  else
    goals.check(
      `${what}: p99 re-welcome <= ${ms(GOAL_REWELCOME_P99_MS)}`,
      f.rewelcomePending > 0 ? `${f.rewelcomePending} of ${f.victimAgents} agents not back` : ms(p99),
      f.rewelcomePending === 0 && p99 <= GOAL_REWELCOME_P99_MS,
    );
}

function scenariosWanted(): Scenario[] {
  const raw = process.env.BATON_FAILOVER_SCENARIOS;
  if (!raw) return [...SCENARIOS];
  const wanted = raw.split(',').map((s) => s.trim());
  const bad = wanted.find((s) => !(SCENARIOS as readonly string[]).includes(s));
  if (bad !== undefined || wanted.length === 0)
    throw new Error(`BATON_FAILOVER_SCENARIOS='${raw}': expected a comma-separated list of ${SCENARIOS.join(', ')}`);
  return SCENARIOS.filter((s) => wanted.includes(s));
}

runBenchmark('failover-bench', async (dir, goals) => {
  const nodes = envCount('BATON_FAILOVER_AGENTS', DEFAULT_AGENTS, WORKERS);
  const scenarios = scenariosWanted();
  const replicas = envCount('BATON_FAILOVER_REPLICAS', DEFAULT_REPLICAS, 2);
  const leaseS = envCount('BATON_FAILOVER_LEASE_S', DEFAULT_LEASE_S);
  const taskMs = envCount('BATON_FAILOVER_TASK_MS', DEFAULT_TASK_MS, 0);
  const perConnection = envCount('BATON_FLEET_AGENTS_PER_CONNECTION', DEFAULT_PER_CONNECTION);
  const timeoutMs = envCount('BATON_FAILOVER_RUN_TIMEOUT_S', Math.ceil(120 + nodes * 0.004)) * 1000;
  const agentsNice = envCount('BATON_FAILOVER_AGENTS_NICE', DEFAULT_AGENTS_NICE, 0);
  const openFiles = raiseOpenFileLimit(Math.ceil(nodes / perConnection) + SPARE_FILES);
  const { environmentpath } = writeTaskModule(dir);
  console.log(
    `failover benchmark: ${nodes} simulated agents (${perConnection} per TCP connection, in ${WORKERS} processes) over ${replicas} scheduler replicas (lease ${leaseS} s); ` +
      `${TASK} on every node, tasks ending within ${taskMs} ms; scenarios ${scenarios.join(', ')}; each run given ${ms(timeoutMs)}; open-file limit ${openFiles}; ` +
      `the simulated agents at nice ${agentsNice} from each kill until the scenario ends`,
  );
  const profileDir = process.env.BATON_BENCH_PROFILE;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  // NODE_OPTIONS refuses --cpu-prof: a preloaded module runs the same profiler (bench/fleet/cpu-profile-preload.ts).
  const replicaNodeOptions = profileDir ? `--require ${join(__dirname, 'fleet', 'cpu-profile-preload.js')}` : undefined;
  const stack = await ReplicaStack.start({ environmentpath, replicas, leaseS, replicaNodeOptions });
  const workers = Array.from({ length: WORKERS }, (_, k) => WorkerProcess.start(`sim-agents-${k + 1}`, join(__dirname, 'fleet', 'sim-agents.js')));
  const results = makeClient(ResultsServiceClient, stack.resultsAddress);
  try {
    if (process.env.BATON_BENCH_SLOWLOG) await stack.watchSlowCommands(envCount('BATON_BENCH_SLOWLOG', 100));
    const rssBefore = stack.schedulerRssBytes();
    const redisBefore = await stack.redisUsedMemory();
    const addresses = stack.replicas.map((r) => r.address);
    const t0 = performance.now();
    const ids = Array.from({ length: nodes }, (_, i) => identity(i + 1));
    const registered = Promise.all(
      workers.map((w, k) =>
        w.request({
          type: 'start',
          addresses,
          identities: ids.filter((_, i) => i % WORKERS === k),
          agentsPerConnection: perConnection,
          localAddressBase: `127.${k + 1}.0`,
          dedupe: true,
          taskMs,
        }),
      ),
    );
    // What held Redis is worth seeing most when registration failed.
    await registered.catch(async (err: unknown) => {
      await printSlowCommands(stack, 'during the failed registration');
      throw err;
    });
    const registrationMs = performance.now() - t0;
    const rssAfter = stack.schedulerRssBytes();
    const redisAfter = await stack.redisUsedMemory();
    const retried = await fleetCounts(workers, '');
    const none = { ...retried, endReasons: {} };
    console.log(
      `  registration: ${nodes} agents welcomed in ${ms(registrationMs)}, ${(nodes / (registrationMs / 1000)).toFixed(0)} agents/s (${retried.streamsEnded} attempts refused or failed and retried, ${retried.retryDelays} of them after a retry delay the scheduler gave)`,
    );
    if (retried.streamsEnded > 0) console.log(`    why: ${endReasonsBetween(none, retried)}`);
    console.log(`  agents per replica: ${placementLine(await placement(stack, workers))}`);
    console.log(
      `  scheduler memory: ${((rssAfter - rssBefore) / nodes / 1024).toFixed(1)} KB per agent (RSS of the ${replicas} replicas ${mb(rssBefore)} before, ${mb(rssAfter)} with every agent)`,
    );
    console.log(
      `  Redis used_memory: ${((redisAfter - redisBefore) / nodes).toFixed(0)} B per node registered (${mb(redisBefore)} before, ${mb(redisAfter)} after)`,
    );
    await printSlowCommands(stack, 'during registration');

    let failed: string | undefined;
    for (const kind of scenarios) {
      if (failed) {
        goals.notMeasured(`the ${kind} scenario`, `the previous run did not end: ${failed}`);
        continue;
      }
      const { settledMs, by } = await settle(stack, workers, nodes);
      console.log(
        `  before the ${kind} scenario: agents per replica ${placementLine(by)}; ` +
          (settledMs === undefined
            ? `not still within ${ms(SETTLE_TIMEOUT_MS)} (agents moving between replicas): started anyway`
            : `still after ${ms(settledMs)}`),
      );
      let f: ScenarioFigures;
      try {
        f = await scenario(kind, stack, stack.live[0], results, workers, nodes, timeoutMs, agentsNice);
      } catch (err) {
        failed = err instanceof Error ? err.message : String(err);
        goals.notMeasured(`the ${kind} scenario`, failed);
        await printSlowCommands(stack, `in the ${kind} scenario`);
        continue;
      }
      await printSlowCommands(stack, `in the ${kind} scenario`);
      report(f, nodes, await placement(stack, workers), goals);
      failed = f.failed;
    }
    const redisEnd = await stack.redisUsedMemory();
    console.log(
      `  Redis used_memory after the runs: ${((redisEnd - redisBefore) / nodes).toFixed(0)} B per node (${mb(redisEnd)}; index, results and event logs)`,
    );
  } finally {
    results.close();
    await Promise.all(workers.map((w) => w.stop()));
    await stack.stop();
  }
  // The killed replicas wrote none.
  if (profileDir) {
    const survivors = stack.replicas.filter((r) => r.child.child.signalCode !== 'SIGKILL');
    printProfiles(
      profileDir,
      Object.fromEntries(survivors.map((r) => [r.name, r.child.child.pid!])),
      survivors.map((r) => r.name),
    );
  }
});
