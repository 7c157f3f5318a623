import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { INITIAL_BACKOFF_MS, MAX_BACKOFF_MS, backoffDelayMs, followedHeartbeatInterval, shuffled } from './connection';

describe('backoffDelayMs', () => {
  it('starts at 200 ms and doubles up to 5 s', () => {
    const middle = () => 0.5; // no jitter
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 50].map((n) => backoffDelayMs(n, middle)),
      [200, 400, 800, 1600, 3200, 5000, 5000, 5000],
    );
  });

  it('jitters each delay by up to 20 % either way', () => {
    assert.equal(
      backoffDelayMs(0, () => 0),
      INITIAL_BACKOFF_MS * 0.8,
    );
    assert.equal(
      backoffDelayMs(0, () => 1),
      INITIAL_BACKOFF_MS * 1.2,
    );
    assert.equal(
      backoffDelayMs(10, () => 1),
      MAX_BACKOFF_MS * 1.2,
    );
  });

  it('waits at least the retry delay the scheduler gave, plus up to 20 %', () => {
    assert.equal(
      backoffDelayMs(0, () => 0, 3000),
      3000,
    );
    assert.equal(
      backoffDelayMs(9, () => 1, 3000),
      3600,
    );
  });
});

describe('shuffled', () => {
  it('keeps every address once, in an order that depends on the random source', () => {
    const addresses = ['a:1', 'b:1', 'c:1', 'd:1'];
    assert.deepEqual(shuffled(addresses, () => 0.999).sort(), addresses);
    assert.notDeepEqual(
      shuffled(addresses, () => 0),
      addresses,
    );
    assert.deepEqual(addresses, ['a:1', 'b:1', 'c:1', 'd:1'], 'the input is left as it was');
  });
});

describe('followedHeartbeatInterval', () => {
  it('follows an interval the answer gives when it differs from the current one', () => {
    assert.equal(followedHeartbeatInterval(30, 10), 30);
    assert.equal(followedHeartbeatInterval(10, 30), 10, 'shorter again, as a replica empties');
    assert.equal(followedHeartbeatInterval(86_400, 10), 86_400, 'a day at most');
  });

  it('keeps the current interval for 0 (unchanged), the same interval, or one over a day', () => {
    assert.equal(followedHeartbeatInterval(0, 10), undefined);
    assert.equal(followedHeartbeatInterval(10, 10), undefined);
    assert.equal(followedHeartbeatInterval(86_401, 10), undefined);
  });
});
