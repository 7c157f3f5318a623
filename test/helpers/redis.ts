import { after, before } from 'node:test';
import Redis, { Cluster } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { startRedis, type RedisProcess } from '../../lib/redis-cluster-server';
import { readyDataNodes, type RedisClient } from '../../lib/redis-client';
import { parseRedisUrl } from '../../lib/redis-url';

/**
 * Whether the tests run on a Redis Cluster: `BATON_TEST_REDIS=cluster` makes every Redis a test
 * helper starts (useRedisServer, the dev stack) a 3-master cluster instead of one server, so
 * that the same test files prove both (scripts/run-tests.mjs `--redis cluster`).
 */
export function testRedisIsCluster(): boolean {
  const kind = process.env.BATON_TEST_REDIS ?? 'server';
  if (kind !== 'server' && kind !== 'cluster') throw new Error(`BATON_TEST_REDIS '${kind}' is not a Redis kind; expected server or cluster`);
  return kind === 'cluster';
}

/** A plain ioredis client of the Redis at `url` (a Cluster client for a cluster's URL), for tests to look at what the services stored. */
export function redisClientOf(url: string): RedisClient {
  const target = parseRedisUrl(url);
  if (!target) throw new Error(`not a redis-url: ${url}`);
  return target.kind === 'server' ? new Redis(target.url) : new Cluster(target.seeds);
}

/**
 * A real Redis for one test file: started on free ports before the file's tests and stopped
 * after them; one server, or a cluster when the tests run on one (`testRedisIsCluster`).
 * `uniquePrefix()` gives each test its own key prefix.
 */
export function useRedisServer(): { readonly url: string; readonly server: RedisProcess; client(): RedisClient } {
  let server: RedisProcess | undefined;
  const clients: RedisClient[] = [];
  before(async () => {
    server = await startRedis({ cluster: testRedisIsCluster() });
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
      const c = redisClientOf(this.url);
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

/** Reads Redis's books through `redis`: on a cluster, the sums over its masters. */
export async function redisBooks(redis: RedisClient): Promise<RedisBooks> {
  const books: RedisBooks = { input: 0, output: 0, calls: new Map() };
  for (const node of await readyDataNodes(redis)) {
    const [stats, commands] = await Promise.all([node.info('stats'), node.info('commandstats')]);
    const counter = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(stats)?.[1]);
    books.input += counter('total_net_input_bytes');
    books.output += counter('total_net_output_bytes');
    for (const m of commands.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) books.calls.set(m[1], (books.calls.get(m[1]) ?? 0) + Number(m[2]));
  }
  return books;
}

/** Calls per command between two readings, without the INFO calls of the readings themselves. */
export function callsBetween(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, n] of after) if (name !== 'info' && n !== (before.get(name) ?? 0)) out[name] = n - (before.get(name) ?? 0);
  return out;
}
