import { spawn } from 'node:child_process';
import { cpuTimeMs } from './proc-stats';

/**
 * The physical floor of a run: the same script spawned `count` times, at most `concurrency`
 * at once, each with its stdout read and its exit awaited, and nothing else. What Baton adds
 * on top of this is its orchestration. Run as a program (`node spawn-floor.js SCRIPT COUNT
 * CONCURRENCY`) it is the floor as the run benchmark measures it: a fresh Node process that
 * prints one JSON line, `{"wallMs": ..., "cpuMs": ...}`, the loop's wall time and the CPU time
 * of this process and of the scripts it reaped during the loop (Node's start-up left out).
 */

/** Spawns `path` once, reads its stdout and waits for it to exit 0; rejects otherwise. */
export function spawnOnce(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(path, [], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.resume();
    child.once('error', reject);
    child.once('close', (code) => (code === 0 && out.length > 0 ? resolve() : reject(new Error(`${path} exited ${code} with ${out.length} stdout chunks`))));
  });
}

/**
 * Spawns `path` `count` times with at most `concurrency` running at once; resolves when all
 * have exited. A spawn is a synchronous fork in the calling thread, so spawns are issued one
 * per event-loop turn, as agents receiving commands one by one issue them.
 */
export async function spawnFloor(path: string, count: number, concurrency: number): Promise<void> {
  let next = 0;
  let turn: Promise<void> = Promise.resolve();
  const nextTurn = (): Promise<void> => (turn = turn.then(() => new Promise<void>((resolve) => setImmediate(resolve))));
  const lane = async (): Promise<void> => {
    while (next < count) {
      next++;
      await nextTurn();
      await spawnOnce(path);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, lane));
}

/** The floor as a program: see the file comment. */
async function main(argv: string[]): Promise<void> {
  const [script, count, concurrency] = [argv[0], Number(argv[1]), Number(argv[2])];
  if (!script || !(count >= 1) || !(concurrency >= 1)) throw new Error('usage: spawn-floor.js SCRIPT COUNT CONCURRENCY (COUNT, CONCURRENCY >= 1)');
  const cpu0 = cpuTimeMs(process.pid, true);
  const t0 = performance.now();
  await spawnFloor(script, count, concurrency);
  const wallMs = performance.now() - t0;
  process.stdout.write(`${JSON.stringify({ wallMs, cpuMs: cpuTimeMs(process.pid, true) - cpu0 })}\n`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`spawn-floor: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
