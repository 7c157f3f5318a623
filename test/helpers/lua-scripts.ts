import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readyDataNodes, type RedisClient } from '../../lib/redis-client';
import { startRedis } from '../../lib/redis-cluster-server';
import { redisClientOf, testRedisIsCluster } from './redis';
import { waitFor } from './wait';

/**
 * The `.lua` files in `dir` (a compiled service's folder, where the build copies its scripts)
 * that the Redis behind `redis` has not loaded (SCRIPT EXISTS of each file's SHA1, which is how
 * Redis names a script; on a cluster, a script some master lacks), with how many files there are.
 */
export async function unloadedScripts(redis: RedisClient, dir: string): Promise<{ files: number; unloaded: string[] }> {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.lua'))
    .sort();
  if (files.length === 0) return { files: 0, unloaded: [] };
  const shas = files.map((f) =>
    createHash('sha1')
      .update(readFileSync(join(dir, f), 'utf8'))
      .digest('hex'),
  );
  const perNode = await Promise.all((await readyDataNodes(redis)).map(async (node) => (await node.script('EXISTS', ...shas)) as number[]));
  return { files: files.length, unloaded: files.filter((_, i) => perNode.some((exists) => exists[i] !== 1)) };
}

/**
 * Checks that a service process loads every script file of `dir` (at least `minFiles` of them)
 * as it starts: against a fresh redis-server that has none, `start` starts the process (and
 * answers something to stop it with), and every script must be loaded soon after, without any
 * request. Fails naming the scripts that were not.
 */
export async function expectScriptsLoadedAtStart(
  dir: string,
  minFiles: number,
  start: (redisUrl: string) => Promise<{ stop(): Promise<void> }>,
): Promise<void> {
  const redis = await startRedis({ cluster: testRedisIsCluster() });
  const client = redisClientOf(redis.url);
  try {
    const before = await unloadedScripts(client, dir);
    assert.ok(before.files >= minFiles, `the build copies the scripts next to the service (found ${before.files}, expected ${minFiles} or more)`);
    assert.equal(before.unloaded.length, before.files, 'a fresh Redis has none of them');
    const service = await start(redis.url);
    try {
      let unloaded = before.unloaded;
      await waitFor('the scripts loaded at start', async () => (unloaded = (await unloadedScripts(client, dir)).unloaded).length === 0).catch(() => {
        assert.fail(`not loaded at start: ${unloaded.join(', ')}`);
      });
    } finally {
      await service.stop();
    }
  } finally {
    await client.quit();
    await redis.stop();
  }
}
