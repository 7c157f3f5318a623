import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunCommand } from '../gen/baton/v1/agent_gateway_service';
import { NodeState } from '../gen/baton/v1/run';
import { InputMethod } from '../gen/baton/v1/task';
import { createLogger } from '../lib/logger';
import { newTaskId } from '../lib/task-id';
import { FileCache } from '../agent/file-cache';
import { Spool } from '../agent/spool';
import { DEFAULT_MAX_CONCURRENT_TASKS, TaskRunner } from '../agent/task-runner';
import { processSupervisor } from '../agent/task-supervisor';
import { spawnFloor } from './fleet/spawn-floor';

/**
 * The agent's CPU per task against the bare-spawn floor, paired (docs/agent-protocol.md, "Why a
 * supervisor"). Three kinds of fresh Node process take turns, in the same run on the same
 * machine (A B C A B C …):
 *
 * - agent: the agent's TaskRunner (checks, cache verification, spool directory, request.json,
 *   files laid out, the task started detached, the exit status, result.json) running TASKS
 *   trivial tasks, at most CONCURRENCY at once, each task forked by the task supervisor;
 * - wrapper: the same, with one /bin/sh wrapper per task spawned by the agent process (the
 *   fallback without perl, and the design before the supervisor);
 * - floor: a fresh Node process spawning the same script TASKS times at the same concurrency
 *   (bench/fleet/spawn-floor.ts), reading its stdout, and nothing else.
 *
 * CPU is utime + stime from /proc of the process and of the children it reaped (the tasks,
 * wrappers), plus, for the agent, the supervisor's own and its reaped children's (the
 * supervisor is alive, so its CPU is not yet in the agent's children's figures). Warm-up tasks
 * run before the first reading. Each ratio is taken within its pair; the medians are printed.
 *
 * Not included: decoding one RunCommand and encoding one TaskFinished on the agent's open
 * stream, which the services' benchmarks measure.
 *
 * Goal: agent CPU per task ≤ GOAL_RATIO × the floor's CPU per spawn. The whole stack's goal is
 * Baton CPU per node (agent + services + Redis) ≤ 2 × the floor's; orchestration is held to
 * 1 ms per node by bench/run-bench.ts, a small fraction of a floor spawn, so the agent may take
 * at most 1.8 × and leave the rest, with some margin, to orchestration.
 *
 * Environment: BATON_BENCH_TASKS (default 200), BATON_BENCH_PAIRS (default 5),
 * BATON_BENCH_CONCURRENCY (default the agent's max-concurrent-tasks).
 */

const TASKS = Number(process.env.BATON_BENCH_TASKS ?? 200);
const PAIRS = Number(process.env.BATON_BENCH_PAIRS ?? 5);
const CONCURRENCY = Number(process.env.BATON_BENCH_CONCURRENCY ?? DEFAULT_MAX_CONCURRENT_TASKS);
const WARMUP = 5;
const GOAL_RATIO = 1.8;
const SCRIPT = '#!/bin/sh\necho \'{"ok": true}\'\n';
const CLOCK_TICKS_PER_S = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

type Kind = 'agent' | 'wrapper' | 'floor';

/** What one worker measured. */
interface Measured {
  cpuMsPerTask: number;
  wallMs: number;
}

/** utime + stime (+ cutime + cstime: reaped children) of a process, in ms. */
function cpuMs(pid: number | 'self'): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 1000) / CLOCK_TICKS_PER_S;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** In a worker: runs TASKS tasks through a TaskRunner over `dir`'s cache; CPU per task. */
async function agentWorker(dir: string, sha256: string, size: number): Promise<Measured> {
  const spoolDir = mkdtempSync(join(dir, 'spool-'));
  const runner = new TaskRunner({
    identity: 'bench.example.com',
    spool: new Spool(spoolDir),
    cache: new FileCache(join(dir, 'cache')),
    log: createLogger('agent-bench', 'silent'),
    maxConcurrentTasks: CONCURRENCY,
  });
  const command = (): RunCommand => ({
    taskId: newTaskId(),
    task: 'bench::trivial',
    environment: 'production',
    files: [{ path: 'bench/tasks/trivial.sh', sha256, sizeBytes: size }],
    executable: 'bench/tasks/trivial.sh',
    implementations: [],
    inputMethod: InputMethod.INPUT_METHOD_BOTH,
    inputJson: '{"name":"value"}',
    sensitiveParameters: [],
    caller: 'user=bench',
    runAs: '',
    timeoutS: 0,
    noop: false,
    supportsNoop: false,
  });
  const events = {
    started: () => undefined,
    finished: (r: { state: NodeState; statusmsg: string }) => {
      if (r.state !== NodeState.NODE_STATE_SUCCEEDED) throw new Error(`task failed: ${r.statusmsg}`);
    },
  };
  const runAll = (n: number) => Promise.all(Array.from({ length: n }, () => runner.run(command(), events)));
  await runAll(WARMUP);
  const supervisor = processSupervisor()?.pid;
  const cpu = () => cpuMs('self') + (supervisor ? cpuMs(supervisor) : 0);
  const c0 = cpu();
  const t0 = performance.now();
  await runAll(TASKS);
  const wallMs = performance.now() - t0;
  return { cpuMsPerTask: (cpu() - c0) / TASKS, wallMs };
}

/** In a worker: the floor, TASKS spawns of the script at CONCURRENCY; CPU per spawn. */
async function floorWorker(script: string): Promise<Measured> {
  await spawnFloor(script, WARMUP, CONCURRENCY);
  const c0 = cpuMs('self');
  const t0 = performance.now();
  await spawnFloor(script, TASKS, CONCURRENCY);
  const wallMs = performance.now() - t0;
  return { cpuMsPerTask: (cpuMs('self') - c0) / TASKS, wallMs };
}

/** Runs one worker in a fresh Node process and returns what it measured. */
function measure(kind: Kind, dir: string, sha256: string, size: number): Promise<Measured> {
  const env = { ...process.env, BATON_AGENT_SUPERVISOR: kind === 'wrapper' ? '0' : '1' };
  const child = spawn(process.execPath, [__filename, 'worker', kind, dir, sha256, String(size)], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) reject(new Error(`the ${kind} worker exited ${code}`));
      else resolve(JSON.parse(out) as Measured);
    });
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-agent-bench-'));
  try {
    mkdirSync(join(dir, 'cache'));
    const data = Buffer.from(SCRIPT);
    const sha256 = createHash('sha256').update(data).digest('hex');
    writeFileSync(join(dir, 'cache', sha256), data, { mode: 0o640 });
    writeFileSync(join(dir, 'trivial.sh'), data);
    chmodSync(join(dir, 'trivial.sh'), 0o755);

    const kinds: Kind[] = ['agent', 'wrapper', 'floor'];
    const runs: Record<Kind, Measured[]> = { agent: [], wrapper: [], floor: [] };
    const load0 = loadavg()[0];
    console.log(
      `agent CPU per task vs the bare-spawn floor: ${TASKS} trivial tasks at concurrency ${CONCURRENCY}, ${PAIRS} rounds of ${kinds.join(' ')}, fresh processes`,
    );
    for (let i = 0; i < PAIRS; i++) {
      for (const kind of kinds) runs[kind].push(await measure(kind, dir, sha256, data.length));
      const [a, w, f] = kinds.map((k) => runs[k][i]);
      console.log(
        `  round ${i + 1}: agent ${a.cpuMsPerTask.toFixed(2)} ms, wrapper ${w.cpuMsPerTask.toFixed(2)} ms, floor ${f.cpuMsPerTask.toFixed(2)} ms per task` +
          ` (agent/floor ${(a.cpuMsPerTask / f.cpuMsPerTask).toFixed(2)}x; wall ${a.wallMs.toFixed(0)}/${w.wallMs.toFixed(0)}/${f.wallMs.toFixed(0)} ms)`,
      );
    }
    const ratio = (k: Kind) => median(runs[k].map((m, i) => m.cpuMsPerTask / runs.floor[i].cpuMsPerTask));
    const ms = (k: Kind) => `${median(runs[k].map((m) => m.cpuMsPerTask)).toFixed(2)} ms`;
    const agentRatio = ratio('agent');
    const met = agentRatio <= GOAL_RATIO;
    console.log('| CPU per task (medians) | agent, supervisor | agent, /bin/sh wrapper per task | floor (bare spawn) |');
    console.log('|---|---|---|---|');
    console.log(`| ms | ${ms('agent')} | ${ms('wrapper')} | ${ms('floor')} |`);
    console.log(`| × floor (per round) | ${agentRatio.toFixed(2)}× | ${ratio('wrapper').toFixed(2)}× | 1× |`);
    console.log(`load average ${load0.toFixed(2)} at the start, ${loadavg()[0].toFixed(2)} at the end`);
    console.log(`goal: agent CPU per task ≤ ${GOAL_RATIO}× the floor's per spawn: ${met ? 'met' : 'MISSED'} (${agentRatio.toFixed(2)}×)`);
    if (!processSupervisor()) console.log('(perl is not installed here: the "agent" rows ran the /bin/sh wrapper too)');
    if (!met) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function worker(kind: Kind, dir: string, sha256: string, size: number): Promise<void> {
  const measured = kind === 'floor' ? await floorWorker(join(dir, 'trivial.sh')) : await agentWorker(dir, sha256, size);
  process.stdout.write(JSON.stringify(measured));
}

const [mode, kind, dir, sha256, size] = process.argv.slice(2);
(mode === 'worker' ? worker(kind as Kind, dir, sha256, Number(size)) : main()).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
