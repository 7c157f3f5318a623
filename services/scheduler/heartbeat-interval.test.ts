import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HeldIntervals, heartbeatIntervalFor } from './heartbeat-interval';

describe('heartbeatIntervalFor', () => {
  it('grows with the agents held to hear about heartbeatsPerS a second, between the interval and its maximum', () => {
    const options = { baseS: 10, maxS: 100, heartbeatsPerS: 1_000 };
    assert.deepEqual(
      [1, 10_000, 10_001, 25_000, 100_000, 1_000_000].map((agents) => heartbeatIntervalFor(agents, options)),
      [10, 10, 11, 25, 100, 100],
    );
  });
});

describe('HeldIntervals', () => {
  it('gives the longest interval still held, as sessions come and go', () => {
    const held = new HeldIntervals();
    assert.equal(held.longestS(), 0);
    for (const s of [10, 20, 30, 30]) held.add(s);
    assert.equal(held.longestS(), 30);
    held.remove(30);
    assert.equal(held.longestS(), 30, 'another session still holds 30 s');
    held.remove(30);
    assert.equal(held.longestS(), 20);
    held.remove(10);
    assert.equal(held.longestS(), 20);
    held.remove(20);
    assert.equal(held.longestS(), 0);
  });
});
