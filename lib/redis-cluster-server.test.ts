import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from './logger';
import { closeRedis, createRedis } from './redis';
import { scanKeys } from './redis-client';
import { startRedisCluster } from './redis-cluster-server';

/** Pids of the redis-server processes listening on `ports` (redis-server titles itself `redis-server 127.0.0.1:<port> [cluster]`). */
function redisServersOn(ports: number[]): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'latin1');
      if (cmd.startsWith('redis-server') && ports.some((p) => cmd.includes(`127.0.0.1:${p} `) || cmd.includes(`127.0.0.1:${p}\0`))) found.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

describe('startRedisCluster', () => {
  it('keeps its data across a stop and a start on the same ports and directory, each node in its own process group, none left after stop', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-cluster-test-'));
    const log = createLogger('test', 'silent');
    try {
      const first = await startRedisCluster({ dir });
      const keys = Array.from({ length: 30 }, (_, i) => `kept:${i}`);
      let redis = createRedis({ url: first.url, log, connectionName: 'restart-test' });
      try {
        const pids = redisServersOn(first.ports);
        assert.equal(pids.length, 3);
        for (const pid of pids)
          assert.equal(/^\d+ \(.*?\) \S+ \d+ (\d+)/.exec(readFileSync(`/proc/${pid}/stat`, 'latin1'))?.[1], String(pid), 'leads its own group');
        await Promise.all(keys.map((k) => redis.set(k, k)));
      } finally {
        await closeRedis(redis);
        await first.stop();
      }
      assert.deepEqual(redisServersOn(first.ports), [], 'every node ended');

      const again = await startRedisCluster({ dir, ports: first.ports });
      try {
        assert.equal(again.url, first.url);
        redis = createRedis({ url: again.url, log, connectionName: 'restart-test' });
        assert.deepEqual((await scanKeys(redis, 'kept:*')).sort(), [...keys].sort());
        assert.equal(await redis.get('kept:7'), 'kept:7');
        await closeRedis(redis);
      } finally {
        await again.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
