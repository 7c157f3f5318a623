import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mapLimit } from './map-limit';

describe('mapLimit', () => {
  it('answers in the order of the items, with never more than the limit running at once', async () => {
    let running = 0;
    let most = 0;
    const out = await mapLimit([5, 1, 4, 2, 3, 0, 6], 3, async (ms) => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, ms * 3));
      running--;
      return ms * 10;
    });
    assert.deepEqual(out, [50, 10, 40, 20, 30, 0, 60]);
    assert.equal(most, 3);
  });

  it('rejects with the first failure', async () => {
    await assert.rejects(
      mapLimit([1, 2, 3], 2, (n) => (n === 2 ? Promise.reject(new Error('slice 2 failed')) : Promise.resolve(n))),
      /slice 2 failed/,
    );
  });
});
