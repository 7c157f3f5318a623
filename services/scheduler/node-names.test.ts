import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { anchoredLiteralPrefix, linearRegex } from '../../lib/linear-regex';
import { uniquePrefix, useRedisServer } from '../../test/helpers/redis';
import { bitmapOfIds } from './node-bitmap';
import { MATCH_CACHE_ENTRIES, NodeNames } from './node-names';

const redis = useRedisServer();

describe('NodeNames', () => {
  it('reads only the ids added since its last refresh and keeps every identity sorted', async () => {
    const client = redis.client();
    const key = `${uniquePrefix()}:nodenames`;
    const names = new NodeNames(client, key);
    await client.rpush(key, 'web2', 'db1', 'web10');
    await names.refresh();
    assert.deepEqual(names.sorted(), ['db1', 'web10', 'web2']);
    await client.rpush(key, 'app1', 'web11', 'zz');
    await names.refresh(2); // a count it already has: no read
    assert.equal(names.count, 3);
    await names.refresh(6);
    assert.equal(names.count, 6);
    assert.deepEqual(names.sorted(), ['app1', 'db1', 'web10', 'web11', 'web2', 'zz']);
    assert.equal(names.idOf('web11'), 4);
    assert.deepEqual(names.namesOf(bitmapOfIds([0, 3, 5], names.count)), ['app1', 'web2', 'zz']);
    assert.deepEqual(names.namesOf(names.matching('web', (n) => n.startsWith('web'))), ['web10', 'web11', 'web2']);
  });

  it("keeps a test's answer and tests only the identities added since, those with the prefix given", async () => {
    const client = redis.client();
    const key = `${uniquePrefix()}:nodenames`;
    const names = new NodeNames(client, key);
    await client.rpush(key, 'web2', 'db1', 'web10', 'web3');
    await names.refresh();
    const tested: string[] = [];
    const test = (n: string) => {
      tested.push(n);
      return n.endsWith('0') || n.endsWith('2');
    };
    assert.deepEqual(names.namesOf(names.matching('ends in 0 or 2', test, 'web')), ['web10', 'web2']);
    assert.deepEqual(tested.sort(), ['web10', 'web2', 'web3']);
    tested.length = 0;
    assert.deepEqual(names.namesOf(names.matching('ends in 0 or 2', test, 'web')), ['web10', 'web2']);
    assert.deepEqual(tested, []);
    await client.rpush(key, 'web20', 'db2', 'app0', 'web21');
    await names.refresh();
    assert.deepEqual(names.namesOf(names.matching('ends in 0 or 2', test, 'web')), ['web10', 'web2', 'web20']);
    assert.deepEqual(tested.sort(), ['web20', 'web21']);
    // Another key is another test, answered afresh.
    assert.deepEqual(names.namesOf(names.matching('ends in 2', (n) => n.endsWith('2'))), ['db2', 'web2']);
  });

  it('tests many identities in one pass over its packed copy, with the answers of a test per identity', async () => {
    const client = redis.client();
    const key = `${uniquePrefix()}:nodenames`;
    const names = new NodeNames(client, key);
    const identity = (i: number) => `${i % 5 === 0 ? 'db' : 'web'}${String(i).padStart(4, '0')}.dc${i % 3}.example.com`;
    await client.rpush(key, ...Array.from({ length: 300 }, (_, i) => identity(i)));
    await names.refresh();
    // A literal prefix most identities have (packed pass), one few have (tested one by one), none.
    for (const source of ['^web0[0-1].*dc1', '^db002', '\\.dc[12]\\.', 'dc0\\.example\\.com$']) {
      const re = linearRegex(source, { automaton: true });
      let passes = 0;
      const packed = re.testPacked!.bind(re);
      const counting: typeof packed = (...args) => {
        passes++;
        packed(...args);
      };
      const expected = () => names.sorted().filter((n) => re.test(n));
      const prefix = anchoredLiteralPrefix(source);
      assert.deepEqual(names.namesOf(names.matching(source, (n) => re.test(n), prefix, counting)), expected(), source);
      assert.equal(passes, source === '^db002' ? 0 : 1, `${source}: passes over the packed copy`);
    }
    // Identities added later are tested from the kept answer on, in a pass over the new ones.
    await client.rpush(key, ...Array.from({ length: 200 }, (_, i) => identity(300 + i)));
    await names.refresh();
    for (const source of ['^web0[0-1].*dc1', '\\.dc[12]\\.']) {
      const re = linearRegex(source, { automaton: true });
      const seen: number[] = [];
      const bits = names.matching(
        source,
        (n) => re.test(n),
        anchoredLiteralPrefix(source),
        (texts, from, to, matched) => {
          seen.push(from, to);
          re.testPacked!(texts, from, to, matched);
        },
      );
      assert.deepEqual(seen, [300, 500], source);
      assert.deepEqual(
        names.namesOf(bits),
        names.sorted().filter((n) => re.test(n)),
        source,
      );
    }
  });

  it('forgets the least recently used answers beyond MATCH_CACHE_ENTRIES', async () => {
    const client = redis.client();
    const key = `${uniquePrefix()}:nodenames`;
    const names = new NodeNames(client, key);
    await client.rpush(key, 'a', 'b');
    await names.refresh();
    let calls = 0;
    const counting = (n: string) => {
      calls++;
      return n === 'a';
    };
    names.matching('kept', counting);
    for (let i = 0; i < MATCH_CACHE_ENTRIES - 1; i++) names.matching(`other ${i}`, () => false);
    names.matching('kept', counting); // used again: now the most recent
    names.matching('one more', () => false);
    assert.equal(calls, 2);
    // Forgotten (it was false for every name): tested again.
    assert.deepEqual(names.namesOf(names.matching('other 0', () => true)), ['a', 'b']);
    names.matching('kept', counting);
    assert.equal(calls, 2);
  });

  it('appends each new identity once when queries refresh concurrently', async () => {
    const client = redis.client();
    const key = `${uniquePrefix()}:nodenames`;
    const names = new NodeNames(client, key);
    await client.rpush(key, ...Array.from({ length: 500 }, (_, i) => `n${i}`));
    await Promise.all(Array.from({ length: 20 }, () => names.refresh()));
    assert.equal(names.count, 500);
    assert.equal(names.sorted().length, 500);
    assert.equal(new Set(names.sorted()).size, 500);
  });
});
