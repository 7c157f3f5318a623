import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Hello } from '../../gen/baton/v1/agent_gateway_service';
import { RedisKeys } from '../../lib/redis';
import { uniquePrefix, useRedisServer } from '../../test/helpers/redis';
import { NodeIndex } from './node-index';

const redis = useRedisServer();

function hello(identity: string): Hello {
  return Hello.fromPartial({ identity, facts: { os: { family: 'RedHat' } }, classes: ['role::web'], agents: ['bolt_tasks'], version: '0.1.0' });
}

describe('NodeIndex', () => {
  it('writes a node from its Hello with the fields and keys the index documents', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 10);
    await index.upsert(hello('web1'), 's1', 1_000);
    const raw = await client.hgetall(keys.node('web1'));
    assert.deepEqual(raw, {
      identity: 'web1',
      online: '1',
      last_seen: '1000',
      facts: '{"os":{"family":"RedHat"}}',
      classes: '["role::web"]',
      agents: '["bolt_tasks"]',
      version: '0.1.0',
      session: 's1',
    });
    assert.deepEqual(await client.zrange(keys.nodes(), 0, -1, 'WITHSCORES'), ['web1', '1000']);
    const [node] = await index.list();
    assert.deepEqual(node, {
      identity: 'web1',
      connected: true,
      lastSeenMs: 1000,
      facts: { os: { family: 'RedHat' } },
      classes: ['role::web'],
      agents: ['bolt_tasks'],
      version: '0.1.0',
    });
  });

  it('is online while heartbeats are fresh and stale after 3 intervals without one', async () => {
    const index = new NodeIndex(redis.client(), new RedisKeys(uniquePrefix()), 10);
    await index.upsert(hello('web1'), 's1', 1_000);
    let [node] = await index.list();
    assert.equal(index.isOnline(node, 1_000 + 30_000), true);
    assert.equal(index.isOnline(node, 1_000 + 30_001), false);
    assert.equal(await index.touch('web1', 's1', 25_000), 'TOUCHED');
    [node] = await index.list();
    assert.equal(node.lastSeenMs, 25_000);
    assert.equal(index.isOnline(node, 1_000 + 30_001), true);
  });

  it('marks a node offline and keeps it with its last-seen time', async () => {
    const index = new NodeIndex(redis.client(), new RedisKeys(uniquePrefix()), 10);
    await index.upsert(hello('web1'), 's1', 5_000);
    assert.equal(await index.markOffline('web1', 's1'), true);
    const [node] = await index.list();
    assert.equal(node.connected, false);
    assert.equal(node.lastSeenMs, 5_000);
    assert.equal(index.isOnline(node, 5_000), false);
  });

  it('ignores heartbeats and disconnects of a session that a newer one replaced', async () => {
    const index = new NodeIndex(redis.client(), new RedisKeys(uniquePrefix()), 10);
    await index.upsert(hello('web1'), 'old', 1_000);
    await index.upsert(hello('web1'), 'new', 2_000);
    assert.equal(await index.touch('web1', 'old', 3_000), 'OWNED_ELSEWHERE');
    assert.equal(await index.markOffline('web1', 'old'), false);
    const [node] = await index.list();
    assert.equal(node.connected, true);
    assert.equal(node.lastSeenMs, 2_000);
  });

  it('reports a heartbeat for an entry Redis no longer has as missing, without creating a partial entry', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 10);
    assert.equal(await index.touch('ghost', 's1', 1_000), 'MISSING');
    assert.equal(await client.exists(keys.node('ghost')), 0);
    assert.deepEqual(await index.list(), []);
  });

  it('lists nodes sorted by identity', async () => {
    const index = new NodeIndex(redis.client(), new RedisKeys(uniquePrefix()), 10);
    for (const [id, t] of [['db2', 3], ['app1', 1], ['db10', 2]] as const) await index.upsert(hello(id), id, t);
    assert.deepEqual((await index.list()).map((n) => n.identity), ['app1', 'db10', 'db2']);
  });
});
