import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { DevStack } from '../cli/dev-stack';
import { packageRoot } from '../lib/package-root';

/** Runs measured; the median is reported (issue 7 point 8: median of several runs). */
const RUNS = 9;
/** The goal of issue 7 point 8, in seconds of wall time. */
const GOAL_S = 0.6;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Wall seconds of one `baton` process with `args`; throws when it fails. */
function timeCli(args: string[], env: NodeJS.ProcessEnv): number {
  const start = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [join(packageRoot(), 'dist', 'cli', 'main.js'), ...args], { env: { ...process.env, ...env, NO_COLOR: '1' }, encoding: 'utf8' });
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.status !== 0) throw new Error(`baton ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return s;
}

/**
 * `baton tasks run demo::echo` of a trivial task on one node against a running stack, wall
 * time per CLI process, against the floor of `node -e ''` and `baton --version` measured in
 * the same run.
 */
async function main(): Promise<void> {
  const stack = await DevStack.start({ agents: 1 });
  try {
    const a = stack.addresses;
    const env = { BATON_SCHEDULER: a.scheduler, BATON_METADATA: a.metadata, BATON_RESULTS: a.results };
    const run = ['tasks', 'run', 'demo::echo', '--message', 'bench', '-I', 'node1'];
    timeCli(run, env); // warm: the first run downloads the file to the agent
    const floor: number[] = [];
    const version: number[] = [];
    const runs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = process.hrtime.bigint();
      spawnSync(process.execPath, ['-e', '']);
      floor.push(Number(process.hrtime.bigint() - t0) / 1e9);
      version.push(timeCli(['--version'], env));
      runs.push(timeCli(run, env));
    }
    const m = median(runs);
    console.log(`cli-bench: median of ${RUNS} runs, wall seconds`);
    console.log(`  node -e ''                      ${median(floor).toFixed(3)}`);
    console.log(`  baton --version                 ${median(version).toFixed(3)}`);
    console.log(`  baton tasks run demo::echo (1)  ${m.toFixed(3)}  (${(m / median(floor)).toFixed(1)}x node start-up; goal < ${GOAL_S} s: ${m < GOAL_S ? 'met' : 'NOT met'})`);
  } finally {
    await stack.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
