import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DevStack } from '../cli/dev-stack';
import { packageRoot } from '../lib/package-root';

/** Rounds measured, each timing every command once in turn (paired: A B C A B C ...); medians reported. */
const ROUNDS = Number(process.env.CLI_BENCH_ROUNDS ?? 9);
/** Goal: a one-node `baton tasks run` from a shell, wall seconds, for the installed command. */
const RUN_GOAL_S = 0.3;
/** The row of `node -e ''` without NODE_EXTRA_CA_CERTS, when the environment sets it. */
const NO_EXTRA_CA = "node -e '' (no extra CAs)";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Wall seconds of a command line, the CPU seconds (user + system) of what it ran, and what it printed. */
interface Timing {
  wall: number;
  cpu: number;
  stdout: string;
}

/** Seconds in the shell's `times` notation, `0m0.123s`. */
function shellSeconds(t: string): number {
  const m = /^(\d+)m([\d.]+)s$/.exec(t);
  if (!m) throw new Error(`unexpected time '${t}' from the shell's times`);
  return Number(m[1]) * 60 + Number(m[2]);
}

/**
 * One shell command line, run as an operator's shell runs it (`sh -c`), with `baton` found on
 * PATH as `npm link` or a global install puts it there; throws when it fails. The shell's
 * `times` gives the CPU its children used, which a busy machine inflates far less than wall
 * time: it tells a slower command from a slower machine.
 */
function timeShell(line: string, env: NodeJS.ProcessEnv): Timing {
  const start = process.hrtime.bigint();
  const r = spawnSync('/bin/sh', ['-c', `${line}\ntimes`], { env, encoding: 'utf8' });
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.status !== 0) throw new Error(`${line} exited ${r.status}: ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  const children = lines.at(-1)!.trim().split(/\s+/);
  return { wall, cpu: shellSeconds(children[0]) + shellSeconds(children[1]), stdout: lines.slice(0, -1).join('\n') };
}

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

/**
 * Start-up of the installed `baton` command (README: `npm link`, which puts a `baton` link to
 * the file package.json's "bin" names on PATH) against the floor of `node -e ''`, all from a shell in the same rounds:
 * `baton --version` (start-up alone) and a one-node `baton tasks run demo::echo` against a
 * running stack (start-up plus the calls). Exits 1 when the run misses its goal.
 */
async function main(): Promise<void> {
  const bin = mkdtempSync(join(tmpdir(), 'baton-bench-bin-'));
  const home = mkdtempSync(join(tmpdir(), 'baton-bench-home-'));
  // What `npm link` puts on PATH: a link named `baton` to the file package.json's "bin" names.
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { bin: { baton: string } };
  symlinkSync(join(packageRoot(), pkg.bin.baton), join(bin, 'baton'));
  const stack = await DevStack.start({ agents: 1 });
  try {
    const a = stack.addresses;
    // Its own config (none) and code cache directories, apart from the `baton` link (the CLI
    // keeps its files in <dir>/baton): the first run of each command writes the cache, as an
    // operator's first commands after an install do (cli/start.ts).
    const env = {
      ...process.env,
      PATH: `${bin}:${process.env.PATH ?? ''}`,
      BATON_SCHEDULER: a.scheduler,
      BATON_METADATA: a.metadata,
      BATON_RESULTS: a.results,
      NO_COLOR: '1',
      XDG_CONFIG_HOME: home,
      XDG_CACHE_HOME: home,
    };
    const commands: Record<string, string> = {
      "node -e ''": "node -e ''",
      'baton --version': 'baton --version',
      'baton tasks run (1 node)': 'baton tasks run demo::echo --message bench -I node1',
    };
    // NODE_EXTRA_CA_CERTS makes every Node process parse Node's own root certificates and that
    // file as it starts, before any of its code runs: a shell that sets it (as some build and
    // proxy setups do) pays that in every `node`, the floor included. The installed `baton`
    // hands it on past Node's start (bin/baton.sh); this row shows the floor without it.
    if (process.env.NODE_EXTRA_CA_CERTS) commands[NO_EXTRA_CA] = "env -u NODE_EXTRA_CA_CERTS node -e ''";
    // Warm: the first run puts the task's file on the agent, and each command's first run writes its code cache.
    for (const line of Object.values(commands)) timeShell(line, env);
    // A cache that could not be written would measure compilation on every run instead.
    if (!readdirSync(join(home, 'baton')).some((f) => f.endsWith('.cache'))) throw new Error(`no code cache was written in ${join(home, 'baton')}`);
    const times: Record<string, Timing[]> = Object.fromEntries(Object.keys(commands).map((k) => [k, []]));
    const loadBefore = load();
    for (let i = 0; i < ROUNDS; i++) for (const [name, line] of Object.entries(commands)) times[name].push(timeShell(line, env));
    const wall = (name: string) => median(times[name].map((t) => t.wall));
    const cpu = (name: string) => median(times[name].map((t) => t.cpu));
    const floor = { wall: wall("node -e ''"), cpu: cpu("node -e ''") };
    console.log(
      `cli-bench: medians of ${ROUNDS} paired rounds from /bin/sh, seconds; load average ${loadBefore} before, ${load()} after, ${cpus().length} cores`,
    );
    console.log(`  ${'command'.padEnd(26)} ${'wall'.padStart(6)} ${'over node'.padStart(10)} ${'cpu'.padStart(6)} ${'over node'.padStart(10)}`);
    for (const name of Object.keys(commands)) {
      const w = wall(name);
      const c = cpu(name);
      console.log(
        `  ${name.padEnd(26)} ${w.toFixed(3).padStart(6)} ${`+${(w - floor.wall).toFixed(3)}`.padStart(10)} ${c.toFixed(3).padStart(6)} ${`+${(c - floor.cpu).toFixed(3)}`.padStart(10)}`,
      );
    }
    // The task's own run time on the node (demo::echo starts a few processes) is part of the
    // run's wall time that no CLI change removes: the summary's Average Run Time says it.
    const taskRuntimes = times['baton tasks run (1 node)'].map(({ stdout }) => {
      const m = /Average Run Time: ([\d.]+)s/.exec(stdout);
      if (!m) throw new Error(`no Average Run Time in the output of baton tasks run:\n${stdout}`);
      return Number(m[1]);
    });
    console.log(`  of which demo::echo on the node (Average Run Time, median): ${median(taskRuntimes).toFixed(2)} s`);
    const run = wall('baton tasks run (1 node)');
    const met = run <= RUN_GOAL_S;
    console.log(`goal: one-node baton tasks run <= ${RUN_GOAL_S} s wall: ${met ? 'met' : 'NOT met'} (${run.toFixed(3)} s)`);
    if (!met) process.exitCode = 1;
  } finally {
    await stack.stop();
    rmSync(bin, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
