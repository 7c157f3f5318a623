import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { uniquePrefix, useRedisServer } from '../../test/helpers/redis';
import { andInto, andNotInto, bitmapOfIds, clearBit, countBits, fitBitmap, hasBit, orInto } from './node-bitmap';

const redis = useRedisServer();

describe('node bitmaps', () => {
  it('lay bits out as Redis SETBIT does, so a bitmap read with GET decodes to the same ids', async () => {
    const client = redis.client();
    const key = `${uniquePrefix()}:bits`;
    const ids = [0, 1, 7, 8, 9, 63, 64, 1000, 99_999];
    for (const id of ids) await client.setbit(key, id, 1);
    const fromRedis = fitBitmap((await client.getBuffer(key)) ?? undefined, 100_000);
    assert.deepEqual(fromRedis, bitmapOfIds(ids, 100_000));
    assert.deepEqual(
      ids.filter((id) => hasBit(fromRedis, id)),
      ids,
    );
    assert.equal(countBits(fromRedis), ids.length);
  });

  it('combine with AND, OR, AND NOT and count, a shorter bitmap reading as zeros past its end', () => {
    const count = 20;
    const a = bitmapOfIds([1, 2, 3, 17], count);
    const b = fitBitmap(bitmapOfIds([2, 3, 4], 5), count); // a 1-byte reply, as Redis returns for low ids
    const decode = (m: Uint8Array) => Array.from({ length: count }, (_, i) => i).filter((i) => hasBit(m, i));
    assert.deepEqual(decode(andInto(Uint8Array.from(a), b)), [2, 3]);
    assert.deepEqual(decode(orInto(Uint8Array.from(a), b)), [1, 2, 3, 4, 17]);
    assert.deepEqual(decode(andNotInto(Uint8Array.from(a), b)), [1, 17]);
    const c = Uint8Array.from(a);
    clearBit(c, 17);
    clearBit(c, 5000); // past the end: nothing to clear
    assert.deepEqual(decode(c), [1, 2, 3]);
    assert.equal(countBits(bitmapOfIds([0, 19, 25], count)), 2, 'ids past the count are left out');
  });
});
