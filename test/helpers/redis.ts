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
