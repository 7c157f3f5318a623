import { spawn } from 'node:child_process';

/**
 * The physical floor of a run: the same script spawned `count` times, at most `concurrency`
 * at once, each with its stdout read and its exit awaited, and nothing else. What Baton adds
 * on top of this is its orchestration.
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
 * per event-loop turn: a burst of hundreds at once would block the process (and the agents it
 * hosts, whose heartbeats would stop) for seconds, which agents receiving commands one by one
 * never do.
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
