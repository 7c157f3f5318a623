import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DevStack } from '../cli/dev-stack';
import { packageRoot } from '../lib/package-root';

/** Rounds measured, each timing every command once in turn (paired: A B C A B C ...); medians reported. */
const ROUNDS = Number(process.env.CLI_BENCH_ROUNDS ?? 9);
/** Goal: a one-node `baton tasks run` from a shell, wall seconds, for the installed command. */
const RUN_GOAL_S = 0.3;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Wall seconds of one shell command line, run as an operator's shell runs it (`sh -c`), with
 * `baton` found on PATH as `npm link` or a global install puts it there; throws when it fails.
 */
function timeShell(line: string, env: NodeJS.ProcessEnv): number {
  const start = process.hrtime.bigint();
  const r = spawnSync('/bin/sh', ['-c', line], { env, encoding: 'utf8' });
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.status !== 0) throw new Error(`${line} exited ${r.status}: ${r.stderr}`);
  return s;
}

/**
 * Start-up of the installed `baton` command (README: `npm link`, which puts a `baton` link to
 * bin/baton on PATH) against the floor of `node -e ''`, all from a shell in the same rounds:
 * `baton --version` (start-up alone) and a one-node `baton tasks run demo::echo` against a
 * running stack (start-up plus the calls). Exits 1 when the run misses its goal.
 */
async function main(): Promise<void> {
  const bin = mkdtempSync(join(tmpdir(), 'baton-bench-bin-'));
  symlinkSync(join(packageRoot(), 'bin', 'baton'), join(bin, 'baton'));
  const stack = await DevStack.start({ agents: 1 });
  try {
    const a = stack.addresses;
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, BATON_SCHEDULER: a.scheduler, BATON_METADATA: a.metadata, BATON_RESULTS: a.results, NO_COLOR: '1', XDG_CONFIG_HOME: bin };
    const commands = {
      "node -e ''": "node -e ''",
      'baton --version': 'baton --version',
      'baton tasks run (1 node)': 'baton tasks run demo::echo --message bench -I node1 > /dev/null',
    };
    timeShell(commands['baton tasks run (1 node)'], env); // warm: the first run puts the file on the agent
    const times: Record<string, number[]> = Object.fromEntries(Object.keys(commands).map((k) => [k, []]));
    for (let i = 0; i < ROUNDS; i++) for (const [name, line] of Object.entries(commands)) times[name].push(timeShell(line, env));
    const floor = median(times["node -e ''"]);
    console.log(`cli-bench: medians of ${ROUNDS} paired rounds, wall seconds from /bin/sh; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    for (const [name, xs] of Object.entries(times)) {
      const m = median(xs);
      console.log(`  ${name.padEnd(26)} ${m.toFixed(3)}  (+${(m - floor).toFixed(3)} over node start-up)`);
    }
    const run = median(times['baton tasks run (1 node)']);
    const met = run <= RUN_GOAL_S;
    console.log(`goal: one-node baton tasks run <= ${RUN_GOAL_S} s wall: ${met ? 'met' : 'NOT met'} (${run.toFixed(3)} s)`);
    if (!met) process.exitCode = 1;
  } finally {
    await stack.stop();
    rmSync(bin, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
