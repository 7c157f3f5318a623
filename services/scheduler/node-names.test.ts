import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { uniquePrefix, useRedisServer } from '../../test/helpers/redis';
import { bitmapOfIds } from './node-bitmap';
import { NodeNames } from './node-names';

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
    assert.deepEqual(
      names.idsWhere((n) => n.startsWith('web')),
      [0, 2, 4],
    );
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
