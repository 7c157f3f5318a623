import { spawnSync } from 'node:child_process';
import { freePort, retryWhilePortTaken } from './free-port';
import { startChild, type StartedChild } from './child-process';

/** A redis-server child started by `startRedisServer`. */
export interface RedisServerProcess {
  url: string;
  port: number;
  process: StartedChild;
  stop(): Promise<void>;
}

/** The line telling an operator how to get redis-server when it is missing. */
export const REDIS_INSTALL_HINT = 'redis-server not found on PATH; install it with: sudo apt-get install -y redis-server';

/** True when `redis-server` is on PATH. */
export function hasRedisServer(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * Starts a private redis-server on a free port of 127.0.0.1 (never a fixed port such as 6379:
 * another server may run there), without persistence unless `dir` is given. Used by `baton dev`
 * and by the tests.
 */
export async function startRedisServer(options: { port?: number; dir?: string } = {}): Promise<RedisServerProcess> {
  if (!hasRedisServer()) throw new Error(REDIS_INSTALL_HINT);
  const persistence = options.dir ? ['--dir', options.dir, '--appendonly', 'yes'] : ['--save', '', '--appendonly', 'no'];
  const start = async (port: number): Promise<RedisServerProcess> => {
    const proc = await startChild(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--protected-mode', 'yes', ...persistence, '--loglevel', 'notice'],
      { ready: /Ready to accept connections/ },
    );
    return { url: `redis://127.0.0.1:${port}`, port, process: proc, stop: () => proc.stop() };
  };
  return options.port !== undefined ? start(options.port) : retryWhilePortTaken(async () => start(await freePort()));
}
