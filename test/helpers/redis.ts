import { after, before } from 'node:test';
import Redis from 'ioredis';
import { randomBytes } from 'node:crypto';
import { startRedisServer, type RedisServerProcess } from '../../lib/redis-server';

/**
 * A real redis-server for one test file: started on a free port before the file's tests and
 * stopped after them. `uniquePrefix()` gives each test its own key prefix.
 */
export function useRedisServer(): { readonly url: string; readonly server: RedisServerProcess; client(): Redis } {
  let server: RedisServerProcess | undefined;
  const clients: Redis[] = [];
  before(async () => {
    server = await startRedisServer();
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.quit().catch(() => undefined)));
    await server?.stop();
  });
  return {
    get url() {
      if (!server) throw new Error('redis-server not started yet (use inside a test)');
      return server.url;
    },
    get server() {
      if (!server) throw new Error('redis-server not started yet (use inside a test)');
      return server;
    },
    client() {
      const c = new Redis(this.url);
      clients.push(c);
      return c;
    },
  };
}

/** A fresh key prefix, so tests sharing one redis-server never see each other's keys. */
export function uniquePrefix(): string {
  return `test-${randomBytes(4).toString('hex')}`;
}

/** Redis's own books at one moment: bytes received and sent (INFO stats), and the calls of each command so far (INFO commandstats, which counts the commands a script runs too). */
export interface RedisBooks {
  input: number;
  output: number;
  calls: Map<string, number>;
}

/** Reads Redis's books through `redis`. */
export async function redisBooks(redis: Redis): Promise<RedisBooks> {
  const [stats, commands] = await Promise.all([redis.info('stats'), redis.info('commandstats')]);
  const counter = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(stats)?.[1]);
  const calls = new Map<string, number>();
  for (const m of commands.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1], Number(m[2]));
  return { input: counter('total_net_input_bytes'), output: counter('total_net_output_bytes'), calls };
}

/** Calls per command between two readings, without the INFO calls of the readings themselves. */
export function callsBetween(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, n] of after) if (name !== 'info' && n !== (before.get(name) ?? 0)) out[name] = n - (before.get(name) ?? 0);
  return out;
}
