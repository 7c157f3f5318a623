import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Hello } from '../../gen/baton/v1/agent_gateway_service';
import { RARE_FACT_DIGEST_BYTES, RedisKeys } from '../../lib/redis';
import { dataNodes, scanKeys } from '../../lib/redis-client';
import { uniquePrefix, useRedisServer } from '../../test/helpers/redis';
import { waitFor } from '../../test/helpers/wait';
import { touchNodes, type TouchOutcome } from './heartbeat-writer';
import {
  BITMAP_MIN_MEMBERS,
  IndexWriteConflictError,
  NodeIndex,
  OFFLINE_BATCH_MAX,
  UPSERT_BATCH_MAX,
  UPSERT_BATCH_MAX_ARGS,
  UPSERT_STALE_TRIES_MAX,
} from './node-index';

/** Refreshes one node's last-seen time as a heartbeat flush does. */
async function touch(index: NodeIndex, identity: string, sessionId: string, atMs: number): Promise<TouchOutcome> {
  const [outcome] = await touchNodes(index, [{ identity, sessionId, atMs }]);
  return outcome;
}

const redis = useRedisServer();

/** The ids whose bit is set in a Redis bitmap. */
async function bitsOf(client: ReturnType<typeof redis.client>, key: string): Promise<number[]> {
  const b = await client.getBuffer(key);
  if (!b) return [];
  const ids: number[] = [];
  for (let i = 0; i < b.length * 8; i++) if (b[i >> 3] & (0x80 >> (i & 7))) ids.push(i);
  return ids;
}

/** The offsets of the nodes of chunk 0 holding a fact value as records of rare values, ascending. */
async function rareHolders(client: ReturnType<typeof redis.client>, keys: RedisKeys, path: string, value: string): Promise<number[]> {
  const rare = keys.rareFactOf(keys.factValue(0, path, value))!;
  const records = (await client.getBuffer(rare.bucketKey)) ?? Buffer.alloc(0);
  const size = RARE_FACT_DIGEST_BYTES + 2;
  const out: number[] = [];
  for (let at = 0; at + size <= records.length; at += size)
    if (records.subarray(at, at + RARE_FACT_DIGEST_BYTES).equals(rare.digest)) out.push(records.readUInt16BE(at + RARE_FACT_DIGEST_BYTES));
  return out.sort((a, b) => a - b);
}

function hello(identity: string): Hello {
  return Hello.fromPartial({ identity, facts: { os: { family: 'RedHat' } }, classes: ['role::web'], agents: ['bolt_tasks'], version: '0.1.0' });
}

describe('NodeIndex', () => {
  it('writes a node from its Hello with the fields and keys the index documents', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 10);
    await index.upsert(hello('web1'), 's1', 1_000);
    const raw = await client.hgetall(keys.node(0, 'web1'));
    assert.deepEqual(raw, {
      identity: 'web1',
      online: '1',
      last_seen: '1000',
      facts: '{"os":{"family":"RedHat"}}',
      classes: '["role::web"]',
      agents: '["bolt_tasks"]',
      version: '0.1.0',
      session: 's1',
      index: JSON.stringify({ sets: [keys.factValue(0, 'os.family', 'redhat'), keys.nodeClass(0, 'role::web'), keys.nodeAgent(0, 'bolt_tasks')], zsets: [] }),
    });
    assert.deepEqual(await client.zrange(keys.nodes(0), 0, -1, 'WITHSCORES'), ['web1', '1000']);
    const [node] = await index.list();
    assert.deepEqual(node, {
      identity: 'web1',
      connected: true,
      lastSeenMs: 1000,
      facts: { os: { family: 'RedHat' } },
      classes: ['role::web'],
      agents: ['bolt_tasks'],
      version: '0.1.0',
      owner: '',
    });
  });

  it('is online while heartbeats are fresh and stale after 3 intervals without one', async () => {
    const index = new NodeIndex(redis.client(), new RedisKeys(uniquePrefix()), 10);
    await index.upsert(hello('web1'), 's1', 1_000);
    let [node] = await index.list();
    assert.equal(index.isOnline(node, 1_000 + 30_000), true);
    assert.equal(index.isOnline(node, 1_000 + 30_001), false);
    assert.equal(await touch(index, 'web1', 's1', 25_000), 'TOUCHED');
    [node] = await index.list();
    assert.equal(node.lastSeenMs, 25_000);
    assert.equal(index.isOnline(node, 1_000 + 30_001), true);
  });

  it('marks a node offline and keeps it, last seen when its stream ended', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(redis.client(), keys, 10);
    await index.upsert(hello('web1'), 's1', 5_000);
    assert.equal(await index.markOffline('web1', 's1', 7_000), true);
    const [node] = await index.list();
    assert.equal(node.connected, false);
    assert.equal(node.lastSeenMs, 7_000);
    assert.equal(index.isOnline(node, 7_000), false);
    assert.equal(await redis.client().zscore(keys.nodes(0), 'web1'), '7000');
  });

  it('ignores heartbeats and disconnects of a session that a newer one replaced', async () => {
    const index = new NodeIndex(redis.client(), new RedisKeys(uniquePrefix()), 10);
    await index.upsert(hello('web1'), 'old', 1_000);
    await index.upsert(hello('web1'), 'new', 2_000);
    assert.equal(await touch(index, 'web1', 'old', 3_000), 'OWNED_ELSEWHERE');
    assert.equal(await index.markOffline('web1', 'old'), false);
    const [node] = await index.list();
    assert.equal(node.connected, true);
    assert.equal(node.lastSeenMs, 2_000);
  });

  it('reports a heartbeat for an entry Redis no longer has as missing, without creating a partial entry', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 10);
    assert.equal(await touch(index, 'ghost', 's1', 1_000), 'MISSING');
    assert.equal(await client.exists(keys.node(0, 'ghost')), 0);
    assert.deepEqual(await index.list(), []);
  });

  it('lists nodes sorted by identity', async () => {
    const index = new NodeIndex(redis.client(), new RedisKeys(uniquePrefix()), 10);
    for (const [id, t] of [
      ['db2', 3],
      ['app1', 1],
      ['db10', 2],
    ] as const)
      await index.upsert(hello(id), id, t);
    assert.deepEqual(
      (await index.list()).map((n) => n.identity),
      ['app1', 'db10', 'db2'],
    );
  });

  it("replaces a node's fact, class and agent entries when its facts change, leaving no old entry", async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 10);
    const first = Hello.fromPartial({
      identity: 'web1',
      facts: { os: { family: 'RedHat', release: { major: '9' } }, cpus: 4, virtual: true, tags: ['a', 'B'] },
      classes: ['Role::Web', 'profile::base'],
      agents: ['bolt_tasks'],
    });
    await index.upsert(first, 's1', 1_000);
    // Values held by one node are records of rare values (web1 is offset 0), not sets.
    for (const [path, value] of [
      ['os.family', 'redhat'],
      ['os.release.major', '9'],
      ['virtual', 'true'],
      ['tags.1', 'b'],
    ]) {
      assert.deepEqual(await rareHolders(client, keys, path, value), [0], `${path} = ${value}`);
      assert.equal(await client.exists(keys.factValue(0, path, value)), 0);
    }
    assert.deepEqual(await client.zrange(keys.factNumber(0, 'cpus'), 0, -1, 'WITHSCORES'), ['0', '4'], 'web1 (id 0) by its offset');
    assert.deepEqual(await client.zrange(keys.factNumber(0, 'os.release.major'), 0, -1, 'WITHSCORES'), ['0', '9']);
    assert.deepEqual(await client.smembers(keys.nodeClass(0, 'role::web')), ['web1']);
    assert.deepEqual((await client.smembers(keys.classNames())).sort(), ['profile::base', 'role::web']);

    await index.upsert(
      Hello.fromPartial({ identity: 'web1', facts: { os: { family: 'Debian' }, cpus: 8 }, classes: ['role::db'], agents: ['bolt_tasks'] }),
      's1',
      2_000,
    );
    for (const gone of [
      keys.factValue(0, 'os.family', 'redhat'),
      keys.factValue(0, 'os.release.major', '9'),
      keys.factValue(0, 'virtual', 'true'),
      keys.nodeClass(0, 'role::web'),
    ]) {
      assert.equal(await client.exists(gone), 0, `${gone} still exists`);
    }
    for (const [path, value] of [
      ['os.family', 'redhat'],
      ['os.release.major', '9'],
      ['virtual', 'true'],
    ]) {
      assert.deepEqual(await rareHolders(client, keys, path, value), [], `${path} = ${value} left`);
    }
    assert.equal(await client.exists(keys.factNumber(0, 'os.release.major')), 0);
    assert.deepEqual(await rareHolders(client, keys, 'os.family', 'debian'), [0]);
    assert.deepEqual(await client.zrange(keys.factNumber(0, 'cpus'), 0, -1, 'WITHSCORES'), ['0', '8']);
    assert.deepEqual(await client.smembers(keys.nodeClass(0, 'role::db')), ['web1']);
    assert.deepEqual(await index.identities(), ['web1']);
  });

  it('keeps the online zset and bitmap to connected nodes and leaves offline nodes in the index', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 10);
    await index.upsert(hello('b'), 'sb', 1_000);
    await index.upsert(hello('a'), 'sa', 1_000);
    assert.deepEqual(await client.zrange(keys.online(0), 0, -1, 'WITHSCORES'), ['a', '1000', 'b', '1000']);
    await touch(index, 'a', 'sa', 4_000);
    assert.deepEqual(await client.zrange(keys.online(0), 0, -1, 'WITHSCORES'), ['b', '1000', 'a', '4000']);
    await index.markOffline('b', 'sb');
    assert.deepEqual(await client.zrange(keys.online(0), 0, -1), ['a']);
    assert.deepEqual(await bitsOf(client, keys.onlineBitmap(0)), [1], 'b (id 0) left the online bitmap, a (id 1) is in it');
    assert.deepEqual(await bitsOf(client, keys.allNodesBitmap(0)), [0, 1]);
    await touch(index, 'b', 'sb', 5_000); // a late heartbeat of a closed session does not bring it back online
    assert.deepEqual(await client.zrange(keys.online(0), 0, -1), ['a']);
    assert.deepEqual(await index.identities(), ['a', 'b']);
    assert.equal(index.freshSinceMs(100_000), 70_000);
  });
});

describe('NodeIndex ids and bitmaps', () => {
  it('gives every node one dense id, once, even when replicas register nodes concurrently', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const replicas = [new NodeIndex(redis.client(), keys, 10), new NodeIndex(redis.client(), keys, 10)];
    const identities = Array.from({ length: 150 }, (_, i) => `n${i}`);
    // Each identity registers through both replicas at once, twice: 600 writes, 150 ids.
    await Promise.all(replicas.flatMap((r, k) => [...identities, ...identities].map((id) => r.upsert(hello(id), `s${k}`))));
    const client = redis.client();
    const ids = await client.hgetall(keys.nodeIds());
    assert.equal(Object.keys(ids).length, 150);
    assert.deepEqual(
      Object.values(ids)
        .map(Number)
        .sort((a, b) => a - b),
      Array.from({ length: 150 }, (_, i) => i),
    );
    const list = await client.lrange(keys.nodeNames(), 0, -1);
    for (const [identity, id] of Object.entries(ids)) assert.equal(list[Number(id)], identity);
    assert.deepEqual(
      await bitsOf(client, keys.allNodesBitmap(0)),
      Array.from({ length: 150 }, (_, i) => i),
    );
  });

  it('turns a membership set into a bitmap once it has bitmapMinMembers members, and keeps it one', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 10, 2, 2);
    const redhatSet = keys.factValue(0, 'os.family', 'redhat');
    const redhat = keys.bitmapOf(redhatSet);
    const debian = keys.bitmapOf(keys.factValue(0, 'os.family', 'debian'));
    const as = (identity: string, family: string) => Hello.fromPartial({ identity, facts: { os: { family } }, classes: [], agents: [] });
    await index.upsert(as('a', 'RedHat'), 's', 1); // id 0
    assert.equal(await client.exists(redhat), 0, 'one holder: a record');
    assert.deepEqual(await rareHolders(client, keys, 'os.family', 'redhat'), [0]);
    await index.upsert(as('b', 'RedHat'), 's', 1); // id 1
    assert.deepEqual(await bitsOf(client, redhat), [0, 1], 'built from the records when they reach 2');
    assert.deepEqual(await rareHolders(client, keys, 'os.family', 'redhat'), [], 'the records are gone');
    assert.equal(await client.exists(redhatSet), 0, 'the set is gone');
    assert.deepEqual(await client.hgetall(keys.bitmappedSets(0)), { [redhatSet]: '1' });
    await index.upsert(as('c', 'RedHat'), 's', 1); // id 2
    assert.deepEqual(await bitsOf(client, redhat), [0, 1, 2]);
    await index.upsert(as('b', 'Debian'), 's', 2);
    assert.deepEqual(await bitsOf(client, redhat), [0, 2], 'a node whose fact changed leaves the old bitmap');
    await index.upsert(as('c', 'Debian'), 's', 3);
    assert.deepEqual(await bitsOf(client, redhat), [0], 'a bitmap stays one below the threshold');
    assert.deepEqual(await bitsOf(client, debian), [1, 2]);
    await index.upsert(as('c', 'Debian'), 's', 4); // unchanged facts: entries left alone
    assert.deepEqual(await bitsOf(client, debian), [1, 2]);
    assert.deepEqual(await bitsOf(client, keys.onlineBitmap(0)), [0, 1, 2]);
    await index.markOffline('b', 's');
    assert.deepEqual(await bitsOf(client, keys.onlineBitmap(0)), [0, 2], 'an offline node leaves the online bitmap');
    assert.deepEqual(await bitsOf(client, keys.allNodesBitmap(0)), [0, 1, 2]);
  });

  it('keeps a fact value held by fewer than rareFactHolders nodes as records, moves it to its bitmap at that many and back below half', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 10, BITMAP_MIN_MEMBERS, 4);
    const zone = (identity: string, z: string) => Hello.fromPartial({ identity, facts: { zone: z, serial: `S-${identity}` }, classes: [], agents: [] });
    const xSet = keys.factValue(0, 'zone', 'x');
    const x = keys.bitmapOf(xSet);
    const y = keys.bitmapOf(keys.factValue(0, 'zone', 'y'));
    const bucket = keys.rareFactOf(xSet)!.bucketKey;
    // a, b, c, d get ids 0 to 3; serials stay records all along.
    await Promise.all(['a', 'b', 'c'].map((n) => index.upsert(zone(n, 'X'), 's', 1)));
    assert.deepEqual(await rareHolders(client, keys, 'zone', 'x'), [0, 1, 2], 'three holders: records');
    assert.equal(await client.exists(x), 0);
    assert.equal(await client.exists(xSet), 0, 'never a set');
    await index.upsert(zone('d', 'x'), 's', 1);
    assert.deepEqual(await bitsOf(client, x), [0, 1, 2, 3], 'the fourth holder: a bitmap');
    assert.deepEqual(await rareHolders(client, keys, 'zone', 'x'), []);
    assert.equal(await client.hget(keys.bitmappedSets(0), xSet), '1');
    await Promise.all(['c', 'd'].map((n) => index.upsert(zone(n, 'Y'), 's', 2)));
    assert.deepEqual(await bitsOf(client, x), [0, 1], 'two holders, half of 4: still a bitmap');
    assert.deepEqual(await rareHolders(client, keys, 'zone', 'y'), [2, 3]);
    await index.upsert(zone('b', 'Y'), 's', 3);
    assert.equal(await client.exists(x), 0, 'one holder: back to records');
    assert.equal(await client.hget(keys.bitmappedSets(0), xSet), null);
    assert.deepEqual(await rareHolders(client, keys, 'zone', 'x'), [0]);
    assert.deepEqual(await rareHolders(client, keys, 'zone', 'y'), [1, 2, 3]);
    await index.upsert(zone('a', 'Y'), 's', 4);
    assert.deepEqual(await rareHolders(client, keys, 'zone', 'x'), [], 'no holder: nothing left');
    assert.deepEqual(await bitsOf(client, y), [0, 1, 2, 3]);
    assert.deepEqual(await rareHolders(client, keys, 'zone', 'y'), []);
    for (const n of ['a', 'b', 'c', 'd']) assert.deepEqual((await rareHolders(client, keys, 'serial', `s-${n}`)).length, 1, `serial of ${n}`);
    await Promise.all(['a', 'b', 'c', 'd'].map((n) => index.upsert(Hello.fromPartial({ identity: n, facts: {} }), 's', 5)));
    assert.equal(await client.exists(y), 0, 'an emptied bitmap is deleted');
    assert.deepEqual(await scanKeys(client, `${keys.prefix}:{idx:0}:rare:*`), [], 'and so are emptied buckets');
    assert.equal(await client.exists(bucket), 0);
  });

  it('keeps one form per membership when writers have different thresholds', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const webSet = keys.nodeClass(0, 'role::web');
    const web = keys.bitmapOf(webSet);
    const high = new NodeIndex(client, keys, 10, 3);
    const low = new NodeIndex(client, keys, 10, 1);
    await high.upsert(hello('a'), 's', 1);
    await high.upsert(hello('b'), 's', 1);
    assert.equal(await client.exists(web), 0);
    await low.upsert(hello('c'), 's', 1); // a writer with a lower threshold converts the whole set
    assert.deepEqual(await bitsOf(client, web), [0, 1, 2]);
    await high.upsert(hello('d'), 's', 1); // and a writer with a higher one follows the flag
    await high.upsert(Hello.fromPartial({ identity: 'a', classes: [] }), 's', 2);
    assert.deepEqual(await bitsOf(client, web), [1, 2, 3]);
    assert.equal(await client.exists(webSet), 0);
  });

  it('keeps each node of a numeric fact scored by its number, until it has the fact no more', async () => {
    for (const bitmapMinMembers of [BITMAP_MIN_MEMBERS, 1]) {
      const client = redis.client();
      const keys = new RedisKeys(uniquePrefix());
      const index = new NodeIndex(client, keys, 10, bitmapMinMembers);
      await index.upsert(Hello.fromPartial({ identity: 'a', facts: { cpus: 4 } }), 's', 1);
      await index.upsert(Hello.fromPartial({ identity: 'b', facts: { cpus: '8' } }), 's', 1);
      await index.upsert(Hello.fromPartial({ identity: 'c', facts: { cpus: '4.0' } }), 's', 1);
      // Members are offsets in the chunk: a, b and c got ids 0, 1 and 2.
      const values = async () => client.zrange(keys.factNumber(0, 'cpus'), 0, -1, 'WITHSCORES');
      assert.deepEqual(await values(), ['0', '4', '2', '4', '1', '8']);
      await index.upsert(Hello.fromPartial({ identity: 'a', facts: { cpus: 16 } }), 's', 2);
      assert.deepEqual(await values(), ['2', '4', '1', '8', '0', '16']);
      await index.upsert(Hello.fromPartial({ identity: 'c', facts: { cpus: 4 } }), 's', 3); // same number, other text
      assert.deepEqual(await values(), ['2', '4', '1', '8', '0', '16']);
      await index.upsert(Hello.fromPartial({ identity: 'b', facts: {} }), 's', 3);
      assert.deepEqual(await values(), ['2', '4', '0', '16']);
    }
  });
});

describe('NodeIndex batches', () => {
  /**
   * What the index says under `keys`, whatever form each membership has: every membership as the
   * sorted names in its set and its bitmap together (empty ones left out), every other key as
   * read, the prefix replaced by `P` in names and values.
   */
  async function indexContent(client: ReturnType<typeof redis.client>, keys: RedisKeys): Promise<Record<string, unknown>> {
    const names = await client.lrange(keys.nodeNames(), 0, -1);
    const strip = (v: string) => v.split(keys.prefix).join('P');
    const out: Record<string, unknown> = {};
    const members = new Map<string, Set<string>>();
    const memberOf = (key: string) => members.get(key) ?? members.set(key, new Set()).get(key)!;
    const all = await scanKeys(client, `${keys.prefix}:*`);
    // A rare value's records name it by digest: the fact value set keys the nodes list give the names.
    const setOfDigest = new Map<string, string>();
    for (const key of all.filter((k) => k.includes(':node:'))) {
      const listed = JSON.parse((await client.hget(key, 'index')) ?? '{"sets":[]}') as { sets: string[] };
      for (const k of listed.sets) {
        const rare = keys.rareFactOf(k);
        if (rare) setOfDigest.set(rare.digest.toString('hex'), strip(k));
      }
    }
    {
      for (const key of all) {
        const type = await client.type(key);
        const name = strip(key);
        if (key === keys.bitmappedSets(0)) continue; // which form a membership has, not what it holds
        if (type === 'string' && name.startsWith('P:{idx:0}:bits:')) {
          for (const id of await bitsOf(client, key)) memberOf(name.replace('P:{idx:0}:bits:', 'P:{idx:0}:')).add(names[id]);
        } else if (type === 'string' && name.startsWith('P:{idx:0}:rare:')) {
          const records = (await client.getBuffer(key))!;
          for (let at = 0; at < records.length; at += RARE_FACT_DIGEST_BYTES + 2) {
            const digest = records.subarray(at, at + RARE_FACT_DIGEST_BYTES).toString('hex');
            memberOf(setOfDigest.get(digest) ?? `unknown digest ${digest}`).add(names[records.readUInt16BE(at + RARE_FACT_DIGEST_BYTES)]);
          }
        } else if (type === 'set') {
          for (const m of await client.smembers(key)) memberOf(name).add(strip(m));
        } else if (type === 'hash') {
          out[name] = Object.fromEntries(Object.entries(await client.hgetall(key)).map(([f, v]) => [f, strip(v)]));
        } else if (type === 'zset') {
          out[name] = (await client.zrange(key, 0, -1, 'WITHSCORES')).map(strip);
        } else if (type === 'list') {
          out[name] = await client.lrange(key, 0, -1);
        } else {
          out[name] = `unexpected ${type}`;
        }
      }
    }
    for (const [key, set] of members) if (set.size > 0) out[key] = [...set].sort();
    return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  /** Registrations, fact changes, repeats of one node and reconnects, in the order asked for. */
  function writes(): Array<{ hello: Hello; session: string; at: number }> {
    const node = (i: number, wave: number) =>
      Hello.fromPartial({
        identity: `n${i}`,
        facts: { os: { family: (i + wave) % 3 ? 'RedHat' : 'Debian' }, memory: 1024 * ((i + wave) % 4), serial: `S${i}`, rack: `r${(i * (wave + 1)) % 7}` },
        classes: [`role::${['web', 'db'][(i + wave) % 2]}`, `Feature${(i + 2 * wave) % 5}`],
        agents: wave === 1 && i % 4 === 0 ? ['bolt_tasks', 'rpcutil'] : ['bolt_tasks'],
        version: `1.${wave}`,
      });
    const out: Array<{ hello: Hello; session: string; at: number }> = [];
    for (let i = 0; i < 3 * UPSERT_BATCH_MAX; i++) out.push({ hello: node(i, 0), session: `s${i}`, at: 1_000 });
    for (let i = 0; i < UPSERT_BATCH_MAX; i++) out.push({ hello: node(i, 1), session: `s${i}`, at: 2_000 });
    for (const wave of [2, 3, 4]) out.push({ hello: node(5, wave), session: 's5', at: 2_000 + wave }); // one node, several times
    out.push({ hello: node(7, 0), session: 's7b', at: 3_000 }); // a reconnect with the facts of its first Hello
    out.push({ hello: node(8, 1), session: 's8b', at: 3_000 }); // a reconnect with unchanged facts
    return out;
  }

  it('writes Hellos asked for together, in batches, as if each were written alone', async () => {
    const client = redis.client();
    const alone = new RedisKeys(uniquePrefix());
    const together = new RedisKeys(uniquePrefix());
    // A low threshold, so memberships turn into bitmaps inside batches too.
    const one = new NodeIndex(client, alone, 10, 20);
    for (const w of writes()) await one.upsert(w.hello, w.session, w.at);
    await one.markOffline('n3', 's3', 9_000);
    const batched = new NodeIndex(client, together, 10, 20);
    const sent = Promise.all(writes().map((w) => batched.upsert(w.hello, w.session, w.at)));
    await sent;
    await batched.markOffline('n3', 's3', 9_000);
    const expected = await indexContent(client, alone);
    assert.deepEqual(await indexContent(client, together), expected);
    // What the comparison covers: nodes whose facts changed, memberships in both forms, names.
    assert.deepEqual((expected['P:{idx:0}:node:n5'] as Record<string, string>).version, '1.4', 'the last of several writes of one node wins');
    assert.ok(Object.keys(expected).some((k) => k.startsWith('P:{idx:0}:fact:')));
    assert.ok((await client.hlen(together.bitmappedSets(0))) > 0, 'some memberships are bitmaps');
    assert.ok((await scanKeys(client, `${together.prefix}:{idx:0}:rare:*`)).length > 0, 'some fact values are records of rare values');
    assert.deepEqual(expected['P:{nodes}:agentnames'], ['bolt_tasks', 'rpcutil']);
  });

  it('fails only the upsert whose node Redis refuses, writing the others of its batch', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 10);
    // A node hash of the wrong type makes the script fail for the batch that holds it.
    await client.set(keys.node(0, 'bad'), 'not a hash');
    // x and y go alone (two batches in flight), bad and b wait and go together.
    const results = await Promise.allSettled(['x', 'y', 'bad', 'b'].map((id) => index.upsert(hello(id), 's', 1)));
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'fulfilled', 'rejected', 'fulfilled'],
    );
    assert.match(String((results[2] as PromiseRejectedResult).reason), /WRONGTYPE/);
    assert.deepEqual(
      (await index.list()).map((n) => n.identity),
      ['b', 'x', 'y'],
    );
    assert.deepEqual(await client.smembers(keys.nodeClass(0, 'role::web')).then((m) => m.sort()), ['b', 'x', 'y']);
    await client.del(keys.node(0, 'bad'));
    await index.upsert(hello('bad'), 's', 2);
    assert.deepEqual(
      (await index.list()).map((n) => n.identity),
      ['b', 'bad', 'x', 'y'],
    );
  });

  it('fails an upsert the script answers STALE UPSERT_STALE_TRIES_MAX times, writing the others of its batch', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 10);
    // Stored entries the script reads (its JSON decoder takes `nan`) but this scheduler cannot:
    // the key they list is never declared, so every write of the node is STALE.
    await client.hset(keys.node(0, 'stuck'), 'index', `{"sets":["${keys.nodeClass(0, 'elsewhere')}"],"x":nan}`);
    const results = await Promise.allSettled(['x', 'y', 'stuck', 'b', 'c'].map((id) => index.upsert(hello(id), 's', 1)));
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
    );
    const reason = (results[2] as PromiseRejectedResult).reason as IndexWriteConflictError;
    assert.ok(reason instanceof IndexWriteConflictError);
    assert.equal(reason.identity, 'stuck');
    assert.equal(reason.tries, UPSERT_STALE_TRIES_MAX);
    assert.match(
      reason.message,
      /node stuck was not written to the discovery index: its stored entries changed between the read and the write 20 times in a row/,
    );
    assert.deepEqual(await client.smembers(keys.nodeClass(0, 'role::web')).then((m) => m.sort()), ['b', 'c', 'x', 'y']);
    // Entries it can read again: written.
    await client.hdel(keys.node(0, 'stuck'), 'index');
    await index.upsert(hello('stuck'), 's', 2);
    assert.deepEqual(
      (await index.list()).map((n) => n.identity),
      ['b', 'c', 'stuck', 'x', 'y'],
    );
  });

  it('marks a node offline after its Hello still waiting for a batch, never before', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 10);
    // x and y fill the batches in flight, so z's Hello waits in the queue when its stream ends.
    const hellos = ['x', 'y', 'z'].map((id) => index.upsert(hello(id), `s-${id}`, 1_000));
    const offline = index.markOffline('z', 's-z');
    await Promise.all(hellos);
    assert.equal(await offline, true);
    const z = (await index.list()).find((n) => n.identity === 'z');
    assert.equal(z?.connected, false);
    assert.deepEqual(await client.zrange(keys.online(0), 0, -1), ['x', 'y']);
  });

  it('writes new nodes and reconnects with unchanged entries without reading stored entries first, and a node whose facts changed after reading them', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 10);
    // The reads of stored entries are the index's only pipelines.
    const pipeline = client.pipeline.bind(client);
    let reads = 0;
    client.pipeline = (...args: Parameters<typeof pipeline>) => {
      reads++;
      return pipeline(...args);
    };
    try {
      const names = Array.from({ length: 450 }, (_, i) => `n${i}`);
      await Promise.all(names.map((n) => index.upsert(hello(n), `s-${n}`, 1_000)));
      assert.equal(reads, 0, 'a registration storm reads nothing');
      await Promise.all(names.map((n) => index.upsert(hello(n), `s2-${n}`, 2_000)));
      assert.equal(reads, 0, 'a storm of reconnects with unchanged facts reads nothing');
      const moved = Hello.fromPartial({ ...hello('n7'), facts: { os: { family: 'Debian' } } });
      await Promise.all([index.upsert(moved, 's3-n7', 3_000), index.upsert(hello('n8'), 's3-n8', 3_000)]);
      assert.ok(reads > 0, 'the changed node read its stored entries');
    } finally {
      client.pipeline = pipeline;
    }
    // n7 left the RedHat bitmap and is the one holder of Debian (a record of a rare value).
    const offset = Number(await client.hget(keys.nodeOffsets(0), 'n7'));
    assert.deepEqual(await rareHolders(client, keys, 'os.family', 'debian'), [offset]);
    const redhat = await bitsOf(client, keys.bitmapOf(keys.factValue(0, 'os.family', 'redhat')));
    assert.equal(redhat.length, 449);
    assert.ok(!redhat.includes(offset));
    const nodes = await index.list();
    assert.equal(nodes.length, 450);
    assert.ok(nodes.every((n) => n.connected && n.facts.os !== undefined));
    assert.equal(nodes.find((n) => n.identity === 'n7')?.lastSeenMs, 3_000);
    assert.equal(nodes.find((n) => n.identity === 'n9')?.lastSeenMs, 2_000);
  });

  it('marks nodes whose streams ended together offline in a few script calls, each only while its entry belongs to the session that ended', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 10);
    index.setReplica({ id: 'r-1', held: true, expired: () => Promise.resolve([]) });
    const names = Array.from({ length: OFFLINE_BATCH_MAX + 300 }, (_, i) => `n${i}`);
    await Promise.all(names.map((n) => index.upsert(hello(n), `s-${n}`, 1_000)));
    // n1 reconnected meanwhile: its entry belongs to its new session.
    await index.upsert(hello('n1'), 's-n1-again', 2_000);
    // Script calls on every primary (one holds the chunk).
    const calls = async () => {
      const stats = await Promise.all(dataNodes(client).map((node) => node.info('commandstats')));
      return stats.reduce((sum, text) => sum + Number(/cmdstat_evalsha:calls=(\d+)/.exec(text)?.[1] ?? 0), 0);
    };
    const before = await calls();
    const marked = await Promise.all(names.map((n) => index.markOffline(n, `s-${n}`, 5_000)));
    const used = (await calls()) - before;
    assert.deepEqual(marked.map((m, i) => (m ? [] : [names[i]])).flat(), ['n1']);
    // A call alone for the first of each wave that finds none under way (the ids are read from
    // Redis first, in two reads), then the others together, OFFLINE_BATCH_MAX per call.
    assert.ok(used <= 2 + Math.ceil(names.length / OFFLINE_BATCH_MAX), `${used} script calls for ${names.length} nodes`);
    const nodes = await index.list();
    assert.deepEqual(
      nodes.filter((n) => n.connected).map((n) => n.identity),
      ['n1'],
    );
    assert.ok(nodes.every((n) => n.identity === 'n1' || (n.lastSeenMs === 5_000 && n.owner === '')));
    assert.deepEqual(await client.zrange(keys.online(0), 0, -1), ['n1']);
    assert.equal(Number(await client.zscore(keys.nodes(0), 'n7')), 5_000);
    const [id1] = await client.hmget(keys.nodeOffsets(0), 'n1');
    assert.deepEqual(await bitsOf(client, keys.onlineBitmap(0)), [Number(id1)]);
    assert.deepEqual(await bitsOf(client, keys.ownerBitmap(0, 'r-1')), [Number(id1)]);
  });

  it('keeps nodes with many facts to smaller batches, so no script call carries more than UPSERT_BATCH_MAX_ARGS beyond one Hello', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 10);
    // A first command connects the client: a Cluster client knows its nodes from then on.
    await client.exists(keys.nodeNames());
    const monitors = await Promise.all(dataNodes(client).map((node) => node.monitor()));
    const calls: Array<{ nodes: number; args: number }> = [];
    for (const monitor of monitors)
      monitor.on('monitor', (_time: string, args: string[]) => {
        // EVALSHA sha numkeys KEYS... ARGV...: the upsert script's keys include the chunk's
        // bitmapped-sets hash; its ARGV opens with threshold, node count, set count, zset count
        // and ends with the replica id and the count of other replicas.
        // EVAL too: a node that has not loaded the script yet is sent its source.
        if (['evalsha', 'eval'].includes(args[0].toLowerCase()) && args.includes(keys.bitmappedSets(0))) {
          // Then the rare-holders threshold, and one digest per membership declared.
          const argv = args.slice(3 + Number(args[2]));
          calls.push({ nodes: Number(argv[1]), args: argv.length - 7 - Number(argv[2]) });
        }
      });
    const facts = Object.fromEntries(Array.from({ length: 1_500 }, (_, i) => [`f${i}`, i]));
    const ids = Array.from({ length: 12 }, (_, i) => `big${String(i).padStart(2, '0')}`);
    try {
      await Promise.all(ids.map((id) => index.upsert(Hello.fromPartial({ identity: id, facts }), 's', 1)));
      await waitFor('every script call seen', () => calls.reduce((n, c) => n + c.nodes, 0) === ids.length, 10_000);
    } finally {
      for (const monitor of monitors) monitor.disconnect();
    }
    assert.deepEqual(
      (await index.list()).map((n) => n.identity),
      ids,
    );
    assert.ok(
      calls.some((c) => c.nodes > 1),
      'several nodes went together',
    );
    for (const c of calls) assert.ok(c.nodes === 1 || c.args <= UPSERT_BATCH_MAX_ARGS, `${c.nodes} nodes in one call with ${c.args} arguments`);
  });
});
