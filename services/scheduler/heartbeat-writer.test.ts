import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Hello } from '../../gen/baton/v1/agent_gateway_service';
import { createLogger } from '../../lib/logger';
import { RedisKeys } from '../../lib/redis';
import { uniquePrefix, useRedisServer } from '../../test/helpers/redis';
import { waitFor } from '../../test/helpers/wait';
import { HEARTBEAT_FLUSH_MAX_MS, HeartbeatWriter } from './heartbeat-writer';
import { NodeIndex } from './node-index';

const redis = useRedisServer();
const log = createLogger('scheduler', 'silent');

/** Calls of scripts (EVALSHA and EVAL) Redis has served so far. */
async function scriptCalls(client: ReturnType<typeof redis.client>): Promise<number> {
  const info = await client.info('commandstats');
  let calls = 0;
  for (const m of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) calls += Number(m[2]);
  return calls;
}

function hello(identity: string): Hello {
  return Hello.fromPartial({ identity, facts: {}, classes: [], agents: ['bolt_tasks'], version: '0.1.0' });
}

describe('HeartbeatWriter', () => {
  it('writes the last-seen time of every node heard since the last flush in one script call', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 10);
    const nodes = Array.from({ length: 50 }, (_, i) => `web${i}`);
    await Promise.all(nodes.map((n) => index.upsert(hello(n), `s-${n}`, 1_000)));
    const writer = new HeartbeatWriter(index, log);
    // Loads the script into this Redis (EVALSHA answers NOSCRIPT, then EVAL), outside the count.
    writer.heard('web0', 's-web0', () => assert.fail('web0 reported missing'), 1_500);
    await writer.flush();
    const before = await scriptCalls(client);
    for (const n of nodes) writer.heard(n, `s-${n}`, () => assert.fail(`${n} reported missing`), 2_000);
    for (const n of nodes) writer.heard(n, `s-${n}`, () => assert.fail(`${n} reported missing`), 3_000);
    await writer.flush();
    assert.equal((await scriptCalls(client)) - before, 1);
    for (const node of await index.list()) assert.equal(node.lastSeenMs, 3_000, node.identity);
    assert.deepEqual(new Set((await client.zrange(keys.online(0), 0, -1, 'WITHSCORES')).filter((_, i) => i % 2 === 1)), new Set(['3000']));
  });

  it('flushes on its own within a flush interval, a quarter of a short heartbeat interval', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 1);
    await index.upsert(hello('web1'), 's1', 1_000);
    const writer = new HeartbeatWriter(index, log);
    assert.equal(writer.flushIntervalMs, 250);
    assert.equal(new HeartbeatWriter(new NodeIndex(client, keys, 10), log).flushIntervalMs, HEARTBEAT_FLUSH_MAX_MS);
    const heardAt = Date.now();
    writer.heard('web1', 's1', () => assert.fail('reported missing'), heardAt);
    await waitFor('the heartbeat to be written', async () => (await index.list())[0].lastSeenMs === heardAt, 5_000, 20);
  });

  it('leaves offline a node marked offline while its heartbeat waited for the flush', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 10);
    await index.upsert(hello('web1'), 's1', 1_000);
    const writer = new HeartbeatWriter(index, log);
    writer.heard('web1', 's1', () => assert.fail('reported missing'), 2_000);
    assert.equal(await index.markOffline('web1', 's1'), true);
    await writer.flush();
    const [node] = await index.list();
    assert.equal(node.connected, false);
    assert.equal(node.lastSeenMs, 2_000, 'the heartbeat still counts as the last time the node was heard');
    assert.deepEqual(await client.zrange(keys.online(0), 0, -1), []);
  });

  it('ignores a heartbeat of a replaced session and reports a node whose entry Redis lost', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 10);
    await index.upsert(hello('web1'), 'new', 1_000);
    const writer = new HeartbeatWriter(index, log);
    const missing: string[] = [];
    writer.heard('web1', 'old', () => missing.push('web1'), 2_000);
    writer.heard('ghost', 's1', () => missing.push('ghost'), 2_000);
    await writer.flush();
    assert.deepEqual(missing, ['ghost']);
    assert.equal((await index.list())[0].lastSeenMs, 1_000);
    assert.equal(await client.exists(keys.node(0, 'ghost')), 0, 'no partial entry is created');
  });
});
