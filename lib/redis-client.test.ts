import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster } from 'ioredis';
import { createLogger } from './logger';
import { LuaScript } from './lua-script';
import { closeRedis, createRedis } from './redis';
import { dataNodes, duplicateRedis, execPerKey, infoSum, isCluster, keySlot, scanKeys, type RedisClient } from './redis-client';
import { startRedisCluster, type RedisProcess } from './redis-cluster-server';
import { waitFor } from '../test/helpers/wait';

/**
 * The client side of a Redis Cluster, on a real 3-master cluster on loopback (started here
 * whatever BATON_TEST_REDIS says): what differs from one server is handled by lib/redis-client.
 */
describe('a Redis Cluster client', () => {
  let cluster: RedisProcess;
  let redis: RedisClient;
  before(async () => {
    cluster = await startRedisCluster();
    redis = createRedis({ url: cluster.url, log: createLogger('test', 'silent'), connectionName: 'cluster-test' });
  });
  after(async () => {
    await closeRedis(redis);
    await cluster.stop();
  });

  it('is a Cluster client on a redis-cluster:// URL, spread over three masters, on ports other than 6379', async () => {
    assert.ok(isCluster(redis));
    assert.equal(cluster.ports.length, 3);
    assert.ok(!cluster.ports.includes(6379));
    await redis.set('{a}k', '1');
    assert.equal(dataNodes(redis).length, 3);
  });

  it('computes the slot of a key as the cluster does, hash tags and UTF-8 included', async () => {
    const keys = [
      '',
      'a',
      'baton:run:{123}:results',
      'x{}y',
      '{}',
      '{a}{b}',
      'a{b',
      'é{ü}',
      '🙂',
      'k'.repeat(500),
      ...Array.from({ length: 50 }, (_, i) => `key-${i}`),
    ];
    for (const key of keys) assert.equal(keySlot(key), await redis.cluster('KEYSLOT', key), key);
  });

  it('runs the commands of a pipeline over keys on every master and gives the replies in order', async () => {
    const keys = Array.from({ length: 300 }, (_, i) => `p:${i}`);
    assert.ok(new Set(keys.map((k) => redis instanceof Cluster && redis.slots[keySlot(k)]?.join())).size === 3, 'the keys span the three masters');
    const set = await execPerKey(
      redis,
      keys,
      (k) => k,
      (p, k) => p.set(k, `v-${k}`).pexpire(k, 60_000),
    );
    assert.equal(set.length, 600);
    assert.ok(set.every(([err]) => err === null));
    const got = await execPerKey(
      redis,
      keys,
      (k) => k,
      (p, k) => p.get(k),
    );
    assert.deepEqual(
      got.map(([, v]) => v),
      keys.map((k) => `v-${k}`),
    );
  });

  it('scans and sums INFO over every master', async () => {
    const keys = Array.from({ length: 30 }, (_, i) => `scan:${i}`);
    await Promise.all(keys.map((k) => redis.set(k, '1')));
    assert.deepEqual((await scanKeys(redis, 'scan:*')).sort(), [...keys].sort());
    const perNode = await Promise.all(dataNodes(redis).map(async (n) => Number(/^used_memory:(\d+)/m.exec(await n.info('memory'))![1])));
    const sum = await infoSum(redis, 'memory', 'used_memory');
    assert.ok(perNode.every((m) => m > 0));
    assert.ok(Math.abs(sum - perNode.reduce((a, b) => a + b, 0)) < 1_000_000, `${sum} vs ${perNode.join('+')}`);
  });

  it('loads the Lua scripts into every master and runs one wherever its keys live', async () => {
    const script = new LuaScript('cluster-echo', `--[[ Purpose: echo. KEYS[1] a key. Result: the key ]]\nreturn KEYS[1]`);
    const other = createRedis({ url: cluster.url, log: createLogger('test', 'silent'), connectionName: 'cluster-loader' });
    try {
      await new Promise<void>((resolve) => other.once('ready', () => resolve()));
      const masters = dataNodes(other);
      const loaded = async () => Promise.all(masters.map(async (n) => ((await n.script('EXISTS', script.sha)) as number[])[0]));
      for (let i = 0; i < 50 && (await loaded()).some((x) => x !== 1); i++) await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(await loaded(), [1, 1, 1]);
    } finally {
      await closeRedis(other);
    }
    for (const key of ['s:1', 's:2', 's:3', 's:4']) assert.equal(await script.run(redis, [key], []), key);
  });

  it('duplicates into another Cluster client with its own connection name, for blocking reads', async () => {
    const follower = duplicateRedis(redis, 'cluster-follower');
    try {
      assert.ok(isCluster(follower));
      const read = follower.xread('BLOCK', 20_000, 'STREAMS', 'dup:{s}', '$');
      // The entry is added once the read is blocked on the server: '$' means entries after that.
      const blocked = async () => (await Promise.all(dataNodes(redis).map((n) => n.client('LIST') as Promise<string>))).join('\n');
      await waitFor('the follower to block in XREAD', async () => /name=cluster-follower .*cmd=xread/.test(await blocked()), 15_000);
      await redis.xadd('dup:{s}', '*', 'f', 'v');
      const reply = await read;
      assert.equal(reply?.[0]?.[1]?.[0]?.[1]?.[1], 'v');
      const lists = await Promise.all(dataNodes(redis).map((n) => n.client('LIST') as Promise<string>));
      assert.ok(
        lists.some((l) => l.includes('name=cluster-follower')),
        'the follower is named on the cluster',
      );
    } finally {
      follower.disconnect();
    }
  });
});
