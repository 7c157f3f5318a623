import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from './logger';
import { LuaScript } from './lua-script';
import { closeRedis, createRedis, INDEX_CHUNK_NODES, indexChunkOf, RedisKeys } from './redis';
import { keySlot, type RedisClient } from './redis-client';
import { startRedisCluster, type RedisProcess } from './redis-cluster-server';

/** The distinct slots of `keys`. */
function slots(keys: string[]): number[] {
  return [...new Set(keys.map(keySlot))];
}

/**
 * The key layout of lib/redis.ts on a real 3-master cluster (started here whatever
 * BATON_TEST_REDIS says): the key builders put each group of keys a script takes under one tag,
 * and the cluster refuses a call whose declared keys span slots. Redis 7.0 lets a script touch
 * an undeclared key of another slot the same node serves, so test/script-slots.test.ts checks
 * every key each script call touches, declared or not, from MONITOR.
 */
describe('the Redis key layout on a cluster', () => {
  let cluster: RedisProcess;
  let redis: RedisClient;
  before(async () => {
    cluster = await startRedisCluster();
    redis = createRedis({ url: cluster.url, log: createLogger('test', 'silent'), connectionName: 'key-slots-test' });
  });
  after(async () => {
    await closeRedis(redis);
    await cluster.stop();
  });

  it('refuses a script whose declared keys span slots, or that touches a key another node serves', async () => {
    const declared = new LuaScript(
      'two-keys',
      `--[[ Purpose: test. KEYS[1], KEYS[2] keys. Result: 1 ]]\nredis.call('GET', KEYS[1]); redis.call('GET', KEYS[2]); return 1`,
    );
    const undeclared = new LuaScript(
      'built-key',
      `--[[ Purpose: test. KEYS[1] a key. ARGV[1] a key name. Result: 1 ]]\nredis.call('GET', KEYS[1]); redis.call('GET', ARGV[1]); return 1`,
    );
    const [a, b] = ['{a}x', '{b}x'];
    assert.notEqual(keySlot(a), keySlot(b));
    await assert.rejects(declared.run(redis, [a, b], []), /CROSSSLOT/);
    await assert.rejects(undeclared.run(redis, [a], [b]), /non local key|same slot/);
    assert.equal(await declared.run(redis, [a, '{a}y'], []), 1);
  });

  it('puts the keys each script takes under one tag: a run, an index chunk, the node ids, the replicas', () => {
    const keys = new RedisKeys('baton');
    const run = 'c0ffee00-0000-4000-8000-000000000001';
    const runKeys = [
      keys.run(run),
      keys.runResults(run),
      keys.runEvents(run),
      keys.runFinalHosts(run),
      keys.runBriefs(run),
      keys.runHeader(run),
      keys.runResultEvents(run),
      keys.runCreation(run),
      keys.runOrchestration(run),
      keys.runLease(run),
      keys.runPlan(run),
      keys.runCommand(run),
      keys.runCommands(run),
      keys.runReplies(run),
      keys.runFinished(run),
    ];
    assert.equal(slots(runKeys).length, 1, 'a run');
    for (const chunk of [0, 1, 244]) {
      const sets = [keys.factValue(chunk, 'os.family', 'redhat'), keys.nodeClass(chunk, 'role::web'), keys.nodeAgent(chunk, 'bolt_tasks')];
      const chunkKeys = [
        keys.node(chunk, 'web1'),
        keys.node(chunk, 'x{y}z'),
        keys.nodeOffsets(chunk),
        keys.nodes(chunk),
        keys.online(chunk),
        keys.allNodesBitmap(chunk),
        keys.onlineBitmap(chunk),
        keys.bitmappedSets(chunk),
        keys.factNumber(chunk, 'processors.count'),
        keys.ownerBitmap(chunk, 'sched-a-1'),
        ...sets,
        ...sets.map((k) => keys.bitmapOf(k)),
        keys.rareFactOf(sets[0])!.bucketKey,
        keys.rareFacts(chunk, 1023),
      ];
      assert.equal(slots(chunkKeys).length, 1, `chunk ${chunk}`);
    }
    assert.notEqual(keySlot(keys.nodes(0)), keySlot(keys.nodes(1)), 'chunks spread over slots');
    assert.equal(slots([keys.nodeIds(), keys.nodeNames(), keys.classNames(), keys.agentNames()]).length, 1, 'node ids and names');
    assert.equal(slots([keys.replicaLeases(), keys.replicaEpochCounter()]).length, 1, 'replica leases');
    assert.equal(indexChunkOf(INDEX_CHUNK_NODES - 1), 0);
    assert.equal(indexChunkOf(INDEX_CHUNK_NODES), 1);
  });
});
