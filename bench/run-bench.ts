import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NodeState } from '../gen/baton/v1/run';
import { RunTaskRequest, SchedulerServiceClient, type RunTaskResponse } from '../gen/baton/v1/scheduler_service';
import { DEFAULT_MAX_CONCURRENT_TASKS } from '../agent/task-runner';
import { SUPERVISOR_NAME } from '../agent/task-supervisor';
import { makeClient, unary } from '../lib/grpc-client';
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
import { printProfiles } from './fleet/cpu-profile-summary';
import { envCount, envSizes, median, ms, type Goals } from './fleet/goals';
import { childPids, cpuTimeMs, treeCpuMs } from './fleet/proc-stats';
import { spawnFloor } from './fleet/spawn-floor';
import { WorkerProcess } from './fleet/worker-process';

/**
 * The run benchmark: a trivial /bin/sh task run end to end — RunTask in the foreground until it
 * returns with every node's result stored — on 10, 100 and 1,000 real agents (the agent's own
 * code, FLEET_PROCESSES processes each hosting a share, one real process spawn per node per run)
 * against a dev stack (redis-server, metadata, results, scheduler: separate processes).
 *
 * Paired baselines, measured in the same run and alternated with Baton runs (A B A B):
 * - the floor: a fresh Node process (bench/fleet/spawn-floor.ts) spawning the same script N
 *   times, all at once as Baton's N agents do; per pair, Baton's wall time over the floor's, and
 *   Baton's CPU per node (orchestration + the agent processes and everything they spawned) over
 *   the floor's CPU per spawn (its process and the scripts); medians of the pairs' ratios;
 * - when `ansible` is installed, `ansible all -m command -a /bin/true -f 50` over N local hosts
 *   (ansible_connection=local) at 100 and 1,000 nodes; per pair, ansible's wall time over
 *   Baton's; the median.
 *
 * Also per Baton run: orchestration CPU per node (utime+stime from /proc of scheduler, results,
 * metadata and redis-server) and Redis bytes read per node result (INFO stats
 * total_net_output_bytes delta; calls per node from INFO commandstats).
 *
 * Environment: BATON_BENCH_SIZES=10,100,1000; BATON_BENCH_PAIRS (floor pairs per size; default 5
 * up to 100 nodes, 3 above); BATON_BENCH_ANSIBLE_PAIRS (default 3; 0 skips ansible);
 * BATON_BENCH_PROFILE=DIR writes CPU profiles of the services to DIR and prints where their CPU
 * went (the figures of that run are inflated by the profiler, and ansible is not timed).
 */

const DEFAULT_SIZES = [10, 100, 1_000];
/** Floor pairs per size when BATON_BENCH_PAIRS does not say. */
const DEFAULT_PAIRS = (nodes: number): number => (nodes <= 100 ? 5 : 3);
/** The idle window after a size's warm-up run: the scheduler's default heartbeat interval, so every agent is heard once. */
const IDLE_WINDOW_MS = 10_000;
const DEFAULT_ANSIBLE_PAIRS = 3;
/** Processes hosting the agents. */
const FLEET_PROCESSES = 4;
/** Deadline of one RunTask call, in ms, and the wait it asks for, in s. */
const RUN_DEADLINE_MS = 120_000;
const RUN_WAIT_S = 60;
/** The goals, at GOAL_SIZE nodes: wall and CPU against the floor, and orchestration CPU. */
const GOAL_SIZE = 1_000;
const GOAL_WALL_RATIO = 1.5;
const GOAL_CPU_RATIO = 2;
const GOAL_ORCHESTRATION_MS_PER_NODE = 1;
/** Ansible: the speed-up Baton must reach at each size. */
const GOAL_ANSIBLE_SPEEDUP = new Map([
  [100, 30],
  [1_000, 50],
]);
const ANSIBLE_FORKS = 50;
/** Redis bytes read per node result may not grow with N beyond this factor over the smallest size. */
const GOAL_REDIS_GROWTH = 1.2;

const identity = (i: number) => `node${String(i).padStart(5, '0')}.bench`;

/** One measured Baton run. */
interface BatonRun {
  wallMs: number;
  orchestration: PerProcess;
  /** CPU of the agent processes and of everything they spawned. */
  agentsCpuMs: number;
  /** Where the agents' CPU went: the agents' Node processes, their task supervisors, the tasks. */
  agentsSplit: AgentsSplit;
  /**
   * From just before RunTask, in ms: the first and the last task start, the last task end; and
   * the median and 90th percentile of the tasks' runtimes (start to end as their agents saw
   * them), against which the scheduler's progress hold is set.
   */
  timeline: { firstStartMs: number; lastStartMs: number; lastEndMs: number; runtimeP50Ms: number; runtimeP90Ms: number };
  redis: RedisTraffic;
}

/** One floor run: the fresh process's loop. */
interface FloorRun {
  wallMs: number;
  cpuMs: number;
}

/** One size's pairs, or why it could not be measured. */
interface SizeFigures {
  nodes: number;
  pairs: { floor: FloorRun; baton: BatonRun }[];
  ansible: { ansibleMs: number; baton: BatonRun }[];
  failed?: string;
}

/** What a Baton run needs to measure itself. */
interface Fleet {
  bench: BenchStack;
  client: SchedulerServiceClient;
  /** Pids of the agent processes. */
  agentPids: number[];
  /** Directory under which every agent's spool lies (names the task wrappers in their command lines). */
  stateDir: string;
}

/** One foreground RunTask on every node, measured; throws unless every node succeeded. */
async function batonRun(fleet: Fleet, nodes: number): Promise<BatonRun> {
  const agentsCpu = () => treeCpuMs(fleet.agentPids, fleet.stateDir);
  const redisBefore = await fleet.bench.redisCounters();
  const cpuBefore = fleet.bench.cpuMs();
  const agentsBefore = agentsCpu();
  const splitBefore = agentsSplit(fleet.agentPids);
  const t0Epoch = Date.now();
  const t0 = performance.now();
  const res: RunTaskResponse = await unary(fleet.client, fleet.client.runTask, RunTaskRequest.fromPartial({ task: TASK, waitS: RUN_WAIT_S }), {
    deadlineMs: RUN_DEADLINE_MS,
  });
  const wallMs = performance.now() - t0;
  const orchestration = cpuDelta(cpuBefore, fleet.bench.cpuMs());
  const agentsCpuMs = agentsCpu() - agentsBefore;
  const splitAfter = agentsSplit(fleet.agentPids);
  const split: AgentsSplit = {
    node: splitAfter.node - splitBefore.node,
    supervisors: splitAfter.supervisors - splitBefore.supervisors,
    tasks: splitAfter.tasks - splitBefore.tasks,
  };
  const starts = res.results.map((r) => (r.startTime?.getTime() ?? t0Epoch) - t0Epoch);
  const ends = res.results.map((r, i) => starts[i] + r.runtime * 1000);
  const runtimes = res.results.map((r) => r.runtime * 1000).sort((a, b) => a - b);
  const timeline = {
    firstStartMs: Math.min(...starts),
    lastStartMs: Math.max(...starts),
    lastEndMs: Math.max(...ends),
    runtimeP50Ms: median(runtimes),
    runtimeP90Ms: runtimes[Math.floor(runtimes.length * 0.9)] ?? 0,
  };
  const redis = redisTraffic(redisBefore, await fleet.bench.redisCounters());
  const ok = res.results.filter((r) => r.state === NodeState.NODE_STATE_SUCCEEDED).length;
  if (res.results.length !== nodes || ok !== nodes) {
    const states = new Map<string, { count: number; example: string }>();
    for (const r of res.results) {
      const seen = states.get(NodeState[r.state]);
      if (seen) seen.count++;
      else states.set(NodeState[r.state], { count: 1, example: r.statusmsg ? `, e.g. ${r.host}: ${r.statusmsg}` : '' });
    }
    const tally = [...states].map(([k, v]) => `${v.count} ${k.replace('NODE_STATE_', '')}${k === 'NODE_STATE_SUCCEEDED' ? '' : v.example}`).join('; ');
    throw new Error(`run ${res.taskId} returned after ${ms(wallMs)} with ${ok} of ${nodes} nodes succeeded (${tally || 'no results'})`);
  }
  return { wallMs, orchestration, agentsCpuMs, agentsSplit: split, timeline, redis };
}

/** CPU so far, in ms, of the agents' Node processes, of their task supervisors, and of the tasks the supervisors reaped. */
interface AgentsSplit {
  node: number;
  supervisors: number;
  tasks: number;
}

function agentsSplit(agentPids: number[]): AgentsSplit {
  const supervisors = childPids(agentPids, SUPERVISOR_NAME);
  return {
    node: agentPids.reduce((sum, pid) => sum + cpuTimeMs(pid), 0),
    supervisors: supervisors.reduce((sum, pid) => sum + cpuTimeMs(pid), 0),
    tasks: supervisors.reduce((sum, pid) => sum + cpuTimeMs(pid, true) - cpuTimeMs(pid), 0),
  };
}

/** One line on where a Baton run's wall time and CPU went, per node. */
function describeRun(b: BatonRun, floor: FloorRun, nodes: number): string {
  const { firstStartMs, lastStartMs, lastEndMs, runtimeP50Ms, runtimeP90Ms } = b.timeline;
  const perNode = (v: number) => (v / nodes).toFixed(2);
  return (
    `first task start ${ms(firstStartMs)}, last start ${ms(lastStartMs)}, last end ${ms(lastEndMs)}, returned ${ms(b.wallMs)}; ` +
    `task runtime p50 ${ms(runtimeP50Ms)}, p90 ${ms(runtimeP90Ms)}; ` +
    `CPU/node: agents ${perNode(b.agentsSplit.node)}, supervisors ${perNode(b.agentsSplit.supervisors)}, tasks ${perNode(b.agentsSplit.tasks)}, ` +
    `orchestration ${perNode(total(b.orchestration))} ms (floor ${perNode(floor.cpuMs)} ms/spawn)`
  );
}

/** The floor: a fresh Node process spawning `script` `nodes` times, all at once. */
function floorRun(script: string, nodes: number): FloorRun {
  const r = spawnSync(process.execPath, [join(__dirname, 'fleet', 'spawn-floor.js'), script, String(nodes), String(nodes)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`the floor process exited ${r.status}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as FloorRun;
}

/** True when `ansible` runs. */
function hasAnsible(): boolean {
  return spawnSync('ansible', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * The Python executable ansible itself runs under, read from its `#!` line; otherwise the one
 * `python3` resolves to. Never a version manager's shim (pyenv's is a shell script that starts
 * more processes before Python), which would charge ansible for every host a cost an operator's
 * own interpreter does not have.
 */
function ansiblePython(): string {
  const ansible = spawnSync('sh', ['-c', 'command -v ansible'], { encoding: 'utf8' }).stdout.trim();
  const shebang = /^#!\s*(\/\S*python\S*)\s*$/.exec(ansible ? (readFileSync(ansible, 'utf8').split('\n', 1)[0] ?? '') : '')?.[1];
  if (shebang && existsSync(shebang)) return shebang;
  return spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).stdout.trim() || '/usr/bin/python3';
}

/** Times `ansible all -m command -a /bin/true -f ANSIBLE_FORKS` over `nodes` local hosts, in ms. */
function ansibleRun(dir: string, nodes: number): number {
  const inventory = join(dir, `ansible-hosts-${nodes}.ini`);
  const hosts = Array.from({ length: nodes }, (_, i) => `${identity(i + 1)} ansible_connection=local`);
  // The interpreter named, so ansible spends no time discovering it on every host.
  writeFileSync(inventory, ['[all]', ...hosts, '[all:vars]', `ansible_python_interpreter=${ansiblePython()}`, ''].join('\n'));
  const t0 = performance.now();
  const r = spawnSync('ansible', ['all', '-i', inventory, '-m', 'command', '-a', '/bin/true', '-f', String(ANSIBLE_FORKS)], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    env: {
      ...process.env,
      ANSIBLE_HOST_KEY_CHECKING: 'False',
      ANSIBLE_LOCAL_TEMP: join(dir, 'ansible-tmp'),
      ANSIBLE_REMOTE_TEMP: join(dir, 'ansible-remote-tmp'),
    },
  });
  if (r.status !== 0) throw new Error(`ansible exited ${r.status}: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`);
  return performance.now() - t0;
}

/** One size: a warm-up run (fills the agents' caches), floor/Baton pairs, then ansible/Baton pairs. */
async function measureSize(fleet: Fleet, dir: string, script: string, nodes: number, ansiblePairs: number): Promise<SizeFigures> {
  const size: SizeFigures = { nodes, pairs: [], ansible: [] };
  const pairs = envCount('BATON_BENCH_PAIRS', DEFAULT_PAIRS(nodes));
  try {
    await batonRun(fleet, nodes);
    // What the connected fleet costs with nothing running, which a run's figures include for as
    // long as it lasts: over one heartbeat interval, so every agent is heard once.
    const idle = await fleet.bench.idleCpu(nodes, IDLE_WINDOW_MS);
    console.log(
      `    idle over ${IDLE_WINDOW_MS / 1000} s: orchestration ${(total(idle) * 1000).toFixed(1)} µs per node per second ` +
        `(${ORCHESTRATION.map((k) => (idle[k] * 1000).toFixed(1)).join('/')} sched/results/meta/redis)`,
    );
    for (let p = 0; p < pairs; p++) {
      const floor = floorRun(script, nodes);
      const baton = await batonRun(fleet, nodes);
      size.pairs.push({ floor, baton });
      console.log(`    pair ${p + 1}: floor ${ms(floor.wallMs)}, Baton ${ms(baton.wallMs)} (${(baton.wallMs / floor.wallMs).toFixed(2)}x)`);
      console.log(`      ${describeRun(baton, floor, nodes)}`);
      console.log(
        `      of the orchestration CPU, the idle rate over the run's wall time (background): ${((total(idle) * baton.wallMs) / 1000).toFixed(2)} ms per node`,
      );
    }
    for (let p = 0; p < ansiblePairs; p++) {
      const ansibleMs = ansibleRun(dir, nodes);
      const baton = await batonRun(fleet, nodes);
      size.ansible.push({ ansibleMs, baton });
      // Its orchestration CPU joins the size's median (batonMedians): printed like a floor pair's.
      console.log(
        `    ansible pair ${p + 1}: ansible ${ms(ansibleMs)}, Baton ${ms(baton.wallMs)} (${(ansibleMs / baton.wallMs).toFixed(1)}x faster); ` +
          `orchestration ${(total(baton.orchestration) / nodes).toFixed(2)} ms per node`,
      );
    }
  } catch (err) {
    size.failed = err instanceof Error ? err.message : String(err);
  }
  return size;
}

/** The run phase: fleets grow to each size, then each size is measured. */
async function measureRuns(
  dir: string,
  environmentpath: string,
  script: string,
  sizes: number[],
  ansible: { pairs: number; sizes: number[] },
  profileDir?: string,
): Promise<SizeFigures[]> {
  // NODE_OPTIONS refuses --cpu-prof: a preloaded module runs the same profiler (bench/fleet/cpu-profile-preload.ts).
  const nodeOptions = profileDir ? `--require ${join(__dirname, 'fleet', 'cpu-profile-preload.js')}` : undefined;
  // The services' profiles cover the runs of the largest size: they start once its agents are connected.
  if (profileDir) process.env.BATON_BENCH_PROFILE_ON_SIGNAL = '1';
  const bench = await BenchStack.start(environmentpath, { nodeOptions });
  const fleetModule = join(__dirname, 'fleet', 'agent-fleet.js');
  // When profiling, the first fleet process is profiled too (fork takes --cpu-prof, NODE_OPTIONS does not).
  const fleets = Array.from({ length: FLEET_PROCESSES }, (_, k) =>
    WorkerProcess.start(`agent-fleet-${k + 1}`, fleetModule, {}, profileDir && k === 0 ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
  );
  const stateDir = join(dir, 'agents');
  const fleet: Fleet = { bench, client: makeClient(SchedulerServiceClient, bench.schedulerAddress), agentPids: fleets.map((f) => f.child.pid!), stateDir };
  const figures: SizeFigures[] = [];
  try {
    let started = 0;
    for (const nodes of sizes) {
      const t0 = performance.now();
      const fresh = Array.from({ length: nodes - started }, (_, i) => identity(started + i + 1));
      await Promise.all(
        fleets.map((f, k) =>
          f.request({ type: 'start', schedulerAddress: bench.schedulerAddress, stateDir, identities: fresh.filter((_, i) => i % FLEET_PROCESSES === k) }),
        ),
      );
      started = nodes;
      if (profileDir && nodes === sizes[sizes.length - 1])
        for (const pid of [bench.pids.scheduler, bench.pids.results, bench.pids.metadata]) process.kill(pid, 'SIGUSR2');
      const ansiblePairs = ansible.sizes.includes(nodes) ? ansible.pairs : 0;
      console.log(
        `  ${nodes} agents connected in ${ms(performance.now() - t0)}; a warm-up run, then floor/Baton pairs${ansiblePairs > 0 ? ', then ansible/Baton pairs' : ''}`,
      );
      const size = await measureSize(fleet, dir, script, nodes, ansiblePairs);
      figures.push(size);
      if (size.failed) {
        // Unacknowledged results stay with the agents until they reconnect: larger sizes would
        // inherit them, so the run phase ends here.
        console.log(`  ${nodes} nodes: ${size.failed}; larger sizes skipped`);
        break;
      }
    }
  } finally {
    fleet.client.close();
    await Promise.all(fleets.map((f) => f.stop()));
    await bench.stop();
  }
  if (profileDir) printProfiles(profileDir, { ...bench.pids, 'agent fleet 1': fleet.agentPids[0] }, ['scheduler', 'results', 'metadata', 'agent fleet 1']);
  return figures;
}

/** Medians of one size's Baton runs (pairs and ansible pairs alike). */
function batonMedians(f: SizeFigures): { wallMs: number; orchestration: number; perProcess: PerProcess; batonCpu: number; redisBytes: number } {
  const runs = [...f.pairs.map((p) => p.baton), ...f.ansible.map((p) => p.baton)];
  const per = (k: keyof PerProcess) => median(runs.map((r) => r.orchestration[k] / f.nodes));
  return {
    wallMs: median(runs.map((r) => r.wallMs)),
    orchestration: median(runs.map((r) => total(r.orchestration) / f.nodes)),
    perProcess: { scheduler: per('scheduler'), results: per('results'), metadata: per('metadata'), redis: per('redis') },
    batonCpu: median(runs.map((r) => (total(r.orchestration) + r.agentsCpuMs) / f.nodes)),
    redisBytes: median(runs.map((r) => r.redis.outputBytes / f.nodes)),
  };
}

function report(figures: SizeFigures[], sizes: number[], ansible: { available: boolean; pairs: number; sizes: number[] }, goals: Goals): void {
  const pad = (s: string, n: number) => s.padEnd(n);
  console.log('');
  console.log(
    `${pad('nodes', 7)}${pad('Baton', 9)}${pad('floor', 9)}${pad('wall ratio', 12)}${pad('Baton CPU/node', 16)}${pad('floor CPU/spawn', 17)}${pad('CPU ratio', 11)}` +
      `${pad('orch CPU/node', 15)}${pad('sched/results/meta/redis', 26)}${pad('Redis B/node', 14)}Redis calls/node`,
  );
  const measured = new Map<number, { wallRatio: number; cpuRatio: number; orchestration: number; redisBytes: number; ansibleSpeedup?: number }>();
  for (const f of figures) {
    if (f.pairs.length === 0) {
      console.log(`${pad(String(f.nodes), 7)}not measured: ${f.failed ?? 'no pairs'}`);
      continue;
    }
    const b = batonMedians(f);
    const wallRatio = median(f.pairs.map((p) => p.baton.wallMs / p.floor.wallMs));
    const cpuRatio = median(f.pairs.map((p) => (total(p.baton.orchestration) + p.baton.agentsCpuMs) / p.floor.cpuMs));
    const ansibleSpeedup = f.ansible.length > 0 ? median(f.ansible.map((p) => p.ansibleMs / p.baton.wallMs)) : undefined;
    if (!f.failed) measured.set(f.nodes, { wallRatio, cpuRatio, orchestration: b.orchestration, redisBytes: b.redisBytes, ansibleSpeedup });
    const lastRun = f.pairs[f.pairs.length - 1].baton;
    console.log(
      `${pad(String(f.nodes), 7)}${pad(ms(b.wallMs), 9)}${pad(ms(median(f.pairs.map((p) => p.floor.wallMs))), 9)}${pad(`${wallRatio.toFixed(2)}x`, 12)}` +
        `${pad(`${b.batonCpu.toFixed(2)} ms`, 16)}${pad(`${median(f.pairs.map((p) => p.floor.cpuMs / f.nodes)).toFixed(2)} ms`, 17)}${pad(`${cpuRatio.toFixed(2)}x`, 11)}` +
        `${pad(`${b.orchestration.toFixed(2)} ms`, 15)}${pad(ORCHESTRATION.map((k) => b.perProcess[k].toFixed(2)).join('/'), 26)}${pad(b.redisBytes.toFixed(0), 14)}${callsPerNode(lastRun.redis, f.nodes)}`,
    );
    if (f.ansible.length > 0) {
      console.log(
        `${pad('', 7)}ansible -f ${ANSIBLE_FORKS}: ${f.ansible.map((p) => ms(p.ansibleMs)).join(', ')}; paired Baton ${f.ansible.map((p) => ms(p.baton.wallMs)).join(', ')}; Baton ${ansibleSpeedup!.toFixed(1)}x faster (median of pairs)`,
      );
    }
    if (f.pairs.length < 3) console.log(`${pad('', 7)}(${f.pairs.length} pair(s): a trial, not a figure; the goals ask for medians of at least 3)`);
  }
  console.log(
    '  (ratios per pair, then the median; Baton CPU = orchestration + agent processes and what they spawned; floor CPU = its process and the scripts)',
  );

  const failedAt = figures.find((f) => f.failed);
  const why = (n: number) => (failedAt && n >= failedAt.nodes ? `the run at ${failedAt.nodes} nodes did not finish: ${failedAt.failed}` : 'no figure');
  const atGoalSize = measured.get(GOAL_SIZE);
  const sizeGoal = (goal: string, figure: (m: NonNullable<typeof atGoalSize>) => [string, boolean]) => {
    if (atGoalSize) goals.check(goal, ...figure(atGoalSize));
    else if (!sizes.includes(GOAL_SIZE)) goals.skipped(goal, `${GOAL_SIZE} not in BATON_BENCH_SIZES`);
    else goals.notMeasured(goal, why(GOAL_SIZE));
  };
  sizeGoal(`Baton wall / paired floor <= ${GOAL_WALL_RATIO}x at ${GOAL_SIZE} nodes`, (m) => [`${m.wallRatio.toFixed(2)}x`, m.wallRatio <= GOAL_WALL_RATIO]);
  sizeGoal(`Baton CPU per node <= ${GOAL_CPU_RATIO}x the floor's CPU per spawn at ${GOAL_SIZE} nodes`, (m) => [
    `${m.cpuRatio.toFixed(2)}x`,
    m.cpuRatio <= GOAL_CPU_RATIO,
  ]);
  sizeGoal(`orchestration CPU <= ${GOAL_ORCHESTRATION_MS_PER_NODE} ms per node at ${GOAL_SIZE} nodes`, (m) => [
    `${m.orchestration.toFixed(2)} ms`,
    m.orchestration <= GOAL_ORCHESTRATION_MS_PER_NODE,
  ]);

  for (const [n, speedup] of GOAL_ANSIBLE_SPEEDUP) {
    const goal = `>= ${speedup}x faster than ansible -f ${ANSIBLE_FORKS} at ${n} nodes`;
    const m = measured.get(n);
    if (!ansible.available) goals.skipped(goal, "ansible not installed (no 'ansible' on PATH; apt-get install -y ansible)");
    else if (ansible.pairs === 0) goals.skipped(goal, 'BATON_BENCH_ANSIBLE_PAIRS=0');
    else if (!sizes.includes(n)) goals.skipped(goal, `${n} not in BATON_BENCH_SIZES`);
    else if (m?.ansibleSpeedup !== undefined) goals.check(goal, `${m.ansibleSpeedup.toFixed(1)}x`, m.ansibleSpeedup >= speedup);
    else goals.notMeasured(goal, why(n));
  }

  goals.constantInN(
    'Redis bytes read per node result',
    [...measured].map(([n, m]) => [n, m.redisBytes]),
    GOAL_REDIS_GROWTH,
    'B',
    failedAt && why(failedAt.nodes),
  );
}

runBenchmark('run-bench', async (dir, goals) => {
  const sizes = envSizes('BATON_BENCH_SIZES', DEFAULT_SIZES);
  const profileDir = process.env.BATON_BENCH_PROFILE;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const available = hasAnsible();
  const ansible = {
    available,
    pairs: available && !profileDir ? envCount('BATON_BENCH_ANSIBLE_PAIRS', DEFAULT_ANSIBLE_PAIRS, 0) : 0,
    sizes: [...GOAL_ANSIBLE_SPEEDUP.keys()],
  };
  const { environmentpath, script } = writeTaskModule(dir);
  console.log(
    `run benchmark: ${TASK} (a /bin/sh script echoing JSON), RunTask in the foreground until every result is stored; ` +
      `${FLEET_PROCESSES} agent processes, max-concurrent-tasks ${DEFAULT_MAX_CONCURRENT_TASKS}; sizes ${sizes.join(', ')}; ${spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()} cores` +
      (profileDir ? `; PROFILING (figures inflated), profiles in ${profileDir}` : ''),
  );
  if (!available) console.log("  ansible: not installed (no 'ansible' on PATH), the ansible comparison is skipped");
  // Warm the page cache and the kernel's exec path once, outside every measurement.
  await spawnFloor(script, 20, 4);
  const figures = await measureRuns(dir, environmentpath, script, sizes, ansible, profileDir);
  report(figures, sizes, ansible, goals);
});
