import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeState } from '../gen/baton/v1/run';
import { RunTaskRequest, SchedulerServiceClient, type RunTaskResponse } from '../gen/baton/v1/scheduler_service';
import { DEFAULT_MAX_CONCURRENT_TASKS } from '../agent/task-runner';
import { DevStack } from '../cli/dev-stack';
import { makeClient, unary } from '../lib/grpc-client';
import { packageRoot } from '../lib/package-root';
import { summariseCpuProfile } from './fleet/cpu-profile-summary';
import { childPid, cpuTimeMs, rssBytes } from './fleet/proc-stats';
import { spawnFloor } from './fleet/spawn-floor';
import { WorkerProcess } from './fleet/worker-process';

/**
 * The run benchmark (issue 6 point 6): a trivial /bin/sh task run end to end — RunTask in the
 * foreground until it returns with every node's result stored — on 100 and on 1,000 real
 * agents (the agent's own code, FLEET_PROCESSES processes each hosting a share, one real
 * process spawn per node), against the physical floor measured in the same run and in the same
 * processes: the same script spawned as many times, with nothing else. Runs are interleaved
 * (floor, Baton, floor, Baton, ...) so both see the same machine. Everything Baton is a separate
 * process (redis-server, metadata, results, scheduler, via cli/dev-stack.ts).
 *
 * Also: orchestration CPU per node (utime+stime of the three service processes from /proc,
 * before and after the measured runs, divided by the nodes run), and the scheduler's memory per
 * connected agent with IDLE_AGENTS idle agents (light clients speaking the real Connect
 * protocol: bench/fleet/idle-agents.ts), on a stack of its own so the runs never see them.
 *
 * Environment: BATON_BENCH_PROFILE=DIR writes CPU profiles of the services to DIR and
 * prints where their CPU went (the figures of that run are inflated by the profiler);
 * BATON_BENCH_SIZES=100,1000 and BATON_BENCH_IDLE_AGENTS=10000 (0 skips) override the sizes.
 */

/** Node counts measured. */
const DEFAULT_SIZES = [100, 1000];
/** Measured runs per size (after one warm-up run); the median is reported. */
const RUNS_FOR_SIZE = (nodes: number): number => (nodes <= 100 ? 7 : 4);
/** Processes hosting the agents (and running the floor's spawn loop). */
const FLEET_PROCESSES = 4;
/** Idle agents connected for the memory figure. */
const DEFAULT_IDLE_AGENTS = 10_000;
/** Processes holding the idle agents. */
const IDLE_PROCESSES = 4;
/** Deadline of one RunTask call, in ms, and the wait it asks for, in s. */
const RUN_DEADLINE_MS = 120_000;
const RUN_WAIT_S = 60;
/** Goals of issue 6 point 6. */
const GOAL_RATIO = 1.5;
const GOAL_CPU_MS_PER_NODE = 1;
const GOAL_BYTES_PER_AGENT = 40 * 1024;
const GOAL_ANSIBLE_SPEEDUP = 20;
/** Nodes ansible is timed over (the issue's goal is at 100; 1,000 local ansible hosts take minutes). */
const ANSIBLE_NODES = 100;

const TASK = 'bench::trivial';
const SCRIPT = '#!/bin/sh\necho \'{"ok": true, "bench": "trivial"}\'\n';
const TASK_JSON = JSON.stringify({ puppet_task_version: 1, description: 'Prints a small JSON document', parameters: {} });
const SERVICES = ['scheduler', 'results', 'metadata'] as const;
type Service = (typeof SERVICES)[number];

/** Service log lines (warnings and errors) seen, per service; the first few are printed. */
const serviceLog = new Map<string, number>();
const PRINTED_LOG_LINES = 5;

function onServiceStderr(name: string, line: string): void {
  const seen = serviceLog.get(name) ?? 0;
  serviceLog.set(name, seen + 1);
  if (seen < PRINTED_LOG_LINES) console.error(`  [${name}] ${line.slice(0, 400)}`);
  else if (seen === PRINTED_LOG_LINES) console.error(`  [${name}] ... (further lines counted, not printed)`);
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function envList(name: string, fallback: number[]): number[] {
  const raw = process.env[name];
  if (!raw) return fallback;
  const values = raw.split(',').map((v) => Number(v.trim()));
  if (values.some((v) => !Number.isInteger(v) || v < FLEET_PROCESSES)) {
    throw new Error(`${name}='${raw}': expected comma-separated whole numbers >= ${FLEET_PROCESSES}`);
  }
  return values;
}

const ms = (v: number) => `${v.toFixed(0)} ms`;
const pad = (s: string, n: number) => s.padEnd(n);
const verdict = (ok: boolean) => (ok ? 'meets' : 'MISSES');

/** The task module in Puppet's environmentpath layout; returns the environmentpath and the script's path. */
function writeModule(dir: string): { environmentpath: string; script: string } {
  const tasks = join(dir, 'environments', 'production', 'modules', 'bench', 'tasks');
  mkdirSync(tasks, { recursive: true });
  const script = join(tasks, 'trivial.sh');
  writeFileSync(script, SCRIPT);
  chmodSync(script, 0o755);
  writeFileSync(join(tasks, 'trivial.json'), TASK_JSON);
  return { environmentpath: join(dir, 'environments'), script };
}

/** Starts redis and the three services (no agents); NODE_OPTIONS reaches only them. */
async function startStack(environmentpath: string, nodeOptions?: string): Promise<{ stack: DevStack; pids: Record<Service | 'redis', number> }> {
  const before = process.env.NODE_OPTIONS;
  if (nodeOptions) process.env.NODE_OPTIONS = nodeOptions;
  let stack: DevStack;
  try {
    stack = await DevStack.start({ agents: 0, environmentpath, logLevel: 'warn', onStderr: onServiceStderr });
  } finally {
    if (before === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = before;
  }
  const pids = {
    scheduler: childPid(join('dist', 'services', 'scheduler', 'main.js')),
    results: childPid(join('dist', 'services', 'results', 'main.js')),
    metadata: childPid(join('dist', 'services', 'metadata', 'main.js')),
    redis: childPid('redis-server'),
  };
  return { stack, pids };
}

/** Splits identities round-robin over `workers` lists. */
function share<T>(items: T[], workers: number): T[][] {
  const out: T[][] = Array.from({ length: workers }, () => []);
  items.forEach((item, i) => out[i % workers].push(item));
  return out;
}

const identity = (i: number) => `node${String(i).padStart(5, '0')}.bench`;

interface SizeFigures {
  nodes: number;
  /** Why this size could not be measured (a run did not finish within the wait). */
  failed?: string;
  runs: number;
  batonMs: number;
  floorMaxConcurrentMs: number;
  floorAllAtOnceMs: number;
  serviceCpuMsPerNode: Record<Service, number>;
  redisCpuMsPerNode: number;
  /** CPU of the agent processes and the processes they spawned, per node. */
  agentCpuMsPerNode: number;
  /** CPU of the floor's spawn loop (all at once) and the scripts, per spawn. */
  floorCpuMsPerNode: number;
}

/** One foreground RunTask on every node; checks that every node succeeded. */
async function runOnce(client: SchedulerServiceClient, nodes: number): Promise<number> {
  const t0 = performance.now();
  const res: RunTaskResponse = await unary(client, client.runTask, RunTaskRequest.fromPartial({ task: TASK, waitS: RUN_WAIT_S }), { deadlineMs: RUN_DEADLINE_MS });
  const elapsed = performance.now() - t0;
  const ok = res.results.filter((r) => r.state === NodeState.NODE_STATE_SUCCEEDED).length;
  if (res.results.length !== nodes || ok !== nodes) {
    const states = new Map<string, { count: number; example: string }>();
    for (const r of res.results) {
      const seen = states.get(NodeState[r.state]);
      if (seen) seen.count++;
      else states.set(NodeState[r.state], { count: 1, example: r.statusmsg ? `, e.g. ${r.host}: ${r.statusmsg}` : '' });
    }
    const tally = [...states].map(([k, v]) => `${v.count} ${k.replace('NODE_STATE_', '')}${k === 'NODE_STATE_SUCCEEDED' ? '' : v.example}`).join('; ');
    throw new Error(`run ${res.taskId} returned after ${ms(elapsed)} with ${ok} of ${nodes} nodes succeeded (${tally || 'no results'})`);
  }
  return elapsed;
}

/** Times the bare spawn loop in every fleet process at once: `perProcess` spawns each, `concurrency` at a time. */
async function timeFloor(fleets: WorkerProcess[], script: string, perProcess: number, concurrency: number): Promise<number> {
  const t0 = performance.now();
  await Promise.all(fleets.map((f) => f.request({ type: 'floor', script, count: perProcess, concurrency })));
  return performance.now() - t0;
}

/** One size: a warm-up run (fills the agents' caches), then interleaved floor and Baton runs. */
async function measureSize(client: SchedulerServiceClient, fleets: WorkerProcess[], pids: Record<Service | 'redis', number>, script: string, nodes: number): Promise<SizeFigures> {
  await runOnce(client, nodes);
  const perProcess = nodes / FLEET_PROCESSES;
  const runs = RUNS_FOR_SIZE(nodes);
  const baton: number[] = [];
  const floorMax: number[] = [];
  const floorAll: number[] = [];
  const cpu: Record<Service | 'redis' | 'agents' | 'floor', number> = { scheduler: 0, results: 0, metadata: 0, redis: 0, agents: 0, floor: 0 };
  const fleetPids = fleets.map((f) => f.child.pid!);
  // The fleet processes' CPU with their reaped children: the scripts (and the agents' wrappers).
  const fleetCpu = () => fleetPids.reduce((s, p) => s + cpuTimeMs(p, true), 0);
  for (let r = 0; r < runs; r++) {
    floorMax.push(await timeFloor(fleets, script, perProcess, DEFAULT_MAX_CONCURRENT_TASKS));
    const floorCpuBefore = fleetCpu();
    floorAll.push(await timeFloor(fleets, script, perProcess, perProcess));
    cpu.floor += fleetCpu() - floorCpuBefore;
    const before = {
      scheduler: cpuTimeMs(pids.scheduler),
      results: cpuTimeMs(pids.results),
      metadata: cpuTimeMs(pids.metadata),
      redis: cpuTimeMs(pids.redis),
      agents: fleetCpu(),
    };
    baton.push(await runOnce(client, nodes));
    cpu.scheduler += cpuTimeMs(pids.scheduler) - before.scheduler;
    cpu.results += cpuTimeMs(pids.results) - before.results;
    cpu.metadata += cpuTimeMs(pids.metadata) - before.metadata;
    cpu.redis += cpuTimeMs(pids.redis) - before.redis;
    cpu.agents += fleetCpu() - before.agents;
  }
  const per = (v: number) => v / (runs * nodes);
  const figures: SizeFigures = {
    nodes,
    runs,
    batonMs: median(baton),
    floorMaxConcurrentMs: median(floorMax),
    floorAllAtOnceMs: median(floorAll),
    serviceCpuMsPerNode: { scheduler: per(cpu.scheduler), results: per(cpu.results), metadata: per(cpu.metadata) },
    redisCpuMsPerNode: per(cpu.redis),
    agentCpuMsPerNode: per(cpu.agents),
    floorCpuMsPerNode: per(cpu.floor),
  };
  console.log(`  ${nodes} nodes: Baton runs ${baton.map((v) => v.toFixed(0)).join(' ')} ms; floor ${floorMax.map((v) => v.toFixed(0)).join(' ')} / ${floorAll.map((v) => v.toFixed(0)).join(' ')} ms`);
  return figures;
}

/** The run phase: fleets grow to each size; warm-up, then interleaved floor and Baton runs. */
async function measureRuns(environmentpath: string, script: string, stateDir: string, sizes: number[], profileDir?: string): Promise<SizeFigures[]> {
  // NODE_OPTIONS refuses --cpu-prof: a preloaded module runs the same profiler (bench/fleet/cpu-profile-preload.ts).
  const nodeOptions = profileDir ? `--require ${join(__dirname, 'fleet', 'cpu-profile-preload.js')}` : undefined;
  const { stack, pids } = await startStack(environmentpath, nodeOptions);
  const fleetModule = join(__dirname, 'fleet', 'agent-fleet.js');
  // When profiling, the first fleet process is profiled too (fork takes --cpu-prof, NODE_OPTIONS does not).
  const fleets = Array.from({ length: FLEET_PROCESSES }, (_, k) =>
    WorkerProcess.start(`agent-fleet-${k + 1}`, fleetModule, {}, profileDir && k === 0 ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
  );
  const client = makeClient(SchedulerServiceClient, stack.addresses.scheduler);
  const figures: SizeFigures[] = [];
  try {
    let started = 0;
    for (const nodes of sizes) {
      const t0 = performance.now();
      const fresh = Array.from({ length: Math.max(0, nodes - started) }, (_, i) => identity(started + i + 1));
      const lists = share(fresh, FLEET_PROCESSES);
      await Promise.all(fleets.map((f, k) => f.request({ type: 'start', schedulerAddress: stack.addresses.scheduler, stateDir, identities: lists[k] })));
      started = Math.max(started, nodes);
      console.log(`  ${nodes} agents connected in ${ms(performance.now() - t0)}; a warm-up run, then ${RUNS_FOR_SIZE(nodes)} measured`);
      try {
        figures.push(await measureSize(client, fleets, pids, script, nodes));
      } catch (err) {
        // Unacknowledged results stay with the agents until they reconnect: larger sizes would
        // inherit them, so the run phase ends here.
        const failed = err instanceof Error ? err.message : String(err);
        console.log(`  ${nodes} nodes: ${failed}; larger sizes skipped`);
        figures.push({ nodes, failed, runs: 0, batonMs: NaN, floorMaxConcurrentMs: NaN, floorAllAtOnceMs: NaN, serviceCpuMsPerNode: { scheduler: NaN, results: NaN, metadata: NaN }, redisCpuMsPerNode: NaN, agentCpuMsPerNode: NaN, floorCpuMsPerNode: NaN });
        break;
      }
    }
  } finally {
    client.close();
    await Promise.all(fleets.map((f) => f.stop()));
    await stack.stop();
  }
  if (profileDir) printProfiles(profileDir, { ...pids, 'agent fleet 1': fleets[0].child.pid! });
  return figures;
}

/** The memory phase: scheduler RSS before and after IDLE_AGENTS idle agents connect, on a fresh stack. */
async function measureIdleMemory(environmentpath: string, count: number): Promise<{ beforeBytes: number; connectedBytes: number; afterHeartbeatBytes: number; connectMs: number }> {
  const { stack, pids } = await startStack(environmentpath);
  const module = join(__dirname, 'fleet', 'idle-agents.js');
  const workers = Array.from({ length: IDLE_PROCESSES }, (_, k) => WorkerProcess.start(`idle-agents-${k + 1}`, module));
  try {
    const beforeBytes = rssBytes(pids.scheduler);
    const lists = share(Array.from({ length: count }, (_, i) => identity(i + 1)), IDLE_PROCESSES);
    const t0 = performance.now();
    await Promise.all(workers.map((w, k) => w.request({ type: 'start', address: stack.addresses.scheduler, identities: lists[k] })));
    const connectMs = performance.now() - t0;
    const connectedBytes = rssBytes(pids.scheduler);
    // One more heartbeat interval (the scheduler's default, 10 s): the steady state, with every
    // session's heartbeat handled at least once.
    await new Promise((resolve) => setTimeout(resolve, 11_000));
    return { beforeBytes, connectedBytes, afterHeartbeatBytes: rssBytes(pids.scheduler), connectMs };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await stack.stop();
  }
}

/** Times `ansible all -m command` over `nodes` local hosts at the floor's concurrency; undefined when ansible is missing. */
function timeAnsible(dir: string, script: string, nodes: number): number | undefined {
  if (spawnSync('ansible', ['--version'], { stdio: 'ignore' }).status !== 0) return undefined;
  const inventory = join(dir, 'ansible-hosts.ini');
  writeFileSync(inventory, ['[all]', ...Array.from({ length: nodes }, (_, i) => `${identity(i + 1)} ansible_connection=local`), ''].join('\n'));
  const t0 = performance.now();
  const r = spawnSync('ansible', ['all', '-i', inventory, '-m', 'command', '-a', script, '-f', String(DEFAULT_MAX_CONCURRENT_TASKS * FLEET_PROCESSES)], {
    stdio: 'ignore',
    env: { ...process.env, ANSIBLE_HOST_KEY_CHECKING: 'False' },
  });
  if (r.status !== 0) throw new Error(`ansible exited ${r.status}`);
  return performance.now() - t0;
}

function printProfiles(dir: string, pids: Record<string, number>): void {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  for (const service of [...SERVICES, 'agent fleet 1']) {
    const file = files.find((f) => f.includes(`.${pids[service]}.`));
    if (!file) {
      console.log(`  no profile of the ${service} (pid ${pids[service]}) in ${dir}`);
      continue;
    }
    const s = summariseCpuProfile(join(dir, file), packageRoot());
    console.log(`\n  ${service} profile (${join(dir, file)}): busy ${ms(s.busyMs)}, of which GC ${ms(s.gcMs)}`);
    console.log('    top functions by self time:');
    for (const e of s.functions) console.log(`      ${(e.share * 100).toFixed(1).padStart(5)} %  ${e.selfMs.toFixed(0).padStart(6)} ms  ${e.name}`);
    console.log('    top files by self time:');
    for (const e of s.files) console.log(`      ${(e.share * 100).toFixed(1).padStart(5)} %  ${e.selfMs.toFixed(0).padStart(6)} ms  ${e.name}`);
    console.log("    Baton's own functions by inclusive time (synchronous callees included):");
    for (const e of s.own) console.log(`      ${(e.share * 100).toFixed(1).padStart(5)} %  ${e.selfMs.toFixed(0).padStart(6)} ms  ${e.name}`);
  }
}

async function main(): Promise<void> {
  const sizes = envList('BATON_BENCH_SIZES', DEFAULT_SIZES);
  const idleAgents = process.env.BATON_BENCH_IDLE_AGENTS !== undefined ? Number(process.env.BATON_BENCH_IDLE_AGENTS) : DEFAULT_IDLE_AGENTS;
  if (!Number.isInteger(idleAgents) || idleAgents < 0) throw new Error(`BATON_BENCH_IDLE_AGENTS='${process.env.BATON_BENCH_IDLE_AGENTS}': expected a whole number >= 0`);
  const profileDir = process.env.BATON_BENCH_PROFILE;
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'baton-run-bench-'));
  const started = performance.now();
  try {
    const { environmentpath, script } = writeModule(dir);
    console.log(
      `run benchmark: ${TASK} (a /bin/sh script echoing JSON), RunTask in the foreground until every result is stored; ` +
        `${FLEET_PROCESSES} agent processes, max-concurrent-tasks ${DEFAULT_MAX_CONCURRENT_TASKS}; medians; ${spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()} cores` +
        (profileDir ? `; PROFILING (figures inflated), profiles in ${profileDir}` : ''),
    );
    // Warm the page cache and the kernel's exec path once, outside every measurement.
    await spawnFloor(script, 20, 4);
    const figures = await measureRuns(environmentpath, script, join(dir, 'agents'), sizes, profileDir);

    let idle: Awaited<ReturnType<typeof measureIdleMemory>> | undefined;
    if (idleAgents > 0) {
      console.log(`  connecting ${idleAgents} idle agents to a fresh scheduler`);
      idle = await measureIdleMemory(environmentpath, idleAgents);
    }
    let ansibleMs: number | undefined;
    const ansibleNodes = Math.min(ANSIBLE_NODES, Math.max(...sizes));
    if (!profileDir) ansibleMs = timeAnsible(dir, script, ansibleNodes);

    console.log('');
    console.log(
      `${pad('nodes', 6)}${pad('Baton', 10)}${pad(`floor c=${DEFAULT_MAX_CONCURRENT_TASKS}x${FLEET_PROCESSES}`, 14)}${pad('floor all', 11)}${pad('ratio', 8)}` +
        `${pad('orch CPU/node', 15)}${pad('sched/results/meta', 20)}${pad('redis/node', 12)}${pad('agents CPU/node', 17)}floor CPU/node`,
    );
    for (const f of figures) {
      if (f.failed) {
        console.log(`${pad(String(f.nodes), 6)}not measured: ${f.failed}`);
        continue;
      }
      const floor = Math.min(f.floorMaxConcurrentMs, f.floorAllAtOnceMs);
      const cpu = f.serviceCpuMsPerNode;
      const orch = cpu.scheduler + cpu.results + cpu.metadata;
      console.log(
        `${pad(String(f.nodes), 6)}${pad(ms(f.batonMs), 10)}${pad(ms(f.floorMaxConcurrentMs), 14)}${pad(ms(f.floorAllAtOnceMs), 11)}${pad(`${(f.batonMs / floor).toFixed(2)}x`, 8)}` +
          `${pad(`${orch.toFixed(2)} ms`, 15)}${pad(`${cpu.scheduler.toFixed(2)}/${cpu.results.toFixed(2)}/${cpu.metadata.toFixed(2)}`, 20)}${pad(`${f.redisCpuMsPerNode.toFixed(2)} ms`, 12)}${pad(`${f.agentCpuMsPerNode.toFixed(2)} ms`, 17)}${f.floorCpuMsPerNode.toFixed(2)} ms`,
      );
    }
    console.log('  (ratio = Baton / the faster floor; CPU per node = CPU time of the processes over the measured runs / (runs x nodes);');
    console.log('   agents and floor include the processes they spawned and reaped: wrapper and script, or the script alone)');
    const largest = figures.find((f) => f.nodes === 1000) ?? figures[figures.length - 1];
    if (largest?.failed) {
      console.log(`goal: ratio <= ${GOAL_RATIO}x at ${largest.nodes} nodes: MISSES (the run did not finish)`);
      console.log(`goal: orchestration CPU <= ${GOAL_CPU_MS_PER_NODE} ms per node at ${largest.nodes} nodes: not measured (the run did not finish)`);
    } else if (largest) {
      const ratio = largest.batonMs / Math.min(largest.floorMaxConcurrentMs, largest.floorAllAtOnceMs);
      const cpu = largest.serviceCpuMsPerNode;
      const orch = cpu.scheduler + cpu.results + cpu.metadata;
      console.log(`goal: ratio <= ${GOAL_RATIO}x at ${largest.nodes} nodes: ${ratio.toFixed(2)}x — ${verdict(ratio <= GOAL_RATIO)}`);
      console.log(`goal: orchestration CPU <= ${GOAL_CPU_MS_PER_NODE} ms per node at ${largest.nodes} nodes: ${orch.toFixed(2)} ms — ${verdict(orch <= GOAL_CPU_MS_PER_NODE)}`);
    }
    if (idle) {
      const perAgent = (idle.afterHeartbeatBytes - idle.beforeBytes) / idleAgents;
      console.log(
        `scheduler memory with ${idleAgents} idle agents (light Connect clients: Hello + heartbeats, one TCP connection each; connected in ${ms(idle.connectMs)}): ` +
          `RSS ${(idle.beforeBytes / 2 ** 20).toFixed(1)} MB before, ${(idle.connectedBytes / 2 ** 20).toFixed(1)} MB when all were welcomed, ` +
          `${(idle.afterHeartbeatBytes / 2 ** 20).toFixed(1)} MB after a heartbeat interval`,
      );
      console.log(`goal: scheduler memory <= ${GOAL_BYTES_PER_AGENT / 1024} KB per agent: ${(perAgent / 1024).toFixed(1)} KB — ${verdict(perAgent <= GOAL_BYTES_PER_AGENT)}`);
    } else {
      console.log('scheduler memory per idle agent: skipped (BATON_BENCH_IDLE_AGENTS=0)');
    }
    const base = figures.find((f) => f.nodes === ansibleNodes && !f.failed);
    if (profileDir) console.log('ansible: not timed while profiling');
    else if (ansibleMs === undefined) console.log(`ansible: not installed (no 'ansible' on PATH); the ${GOAL_ANSIBLE_SPEEDUP}x goal at ${ANSIBLE_NODES} nodes is not measured`);
    else if (base) {
      const speedup = ansibleMs / base.batonMs;
      console.log(`ansible all -m command over ${ansibleNodes} local hosts (forks ${DEFAULT_MAX_CONCURRENT_TASKS * FLEET_PROCESSES}): ${ms(ansibleMs)}; Baton ${speedup.toFixed(1)}x faster — goal >= ${GOAL_ANSIBLE_SPEEDUP}x: ${verdict(speedup >= GOAL_ANSIBLE_SPEEDUP)}`);
    }
    if (serviceLog.size > 0) console.log(`service log lines (warnings and errors): ${[...serviceLog].map(([k, v]) => `${k} ${v}`).join(', ')}`);
    console.log(`(whole benchmark: ${(performance.now() - started) / 1000 | 0} s)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`run-bench: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
