import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FAIR_SHARE_HEADROOM, fairShare } from './agent-shedder';

describe('fairShare', () => {
  it('is the ceiling of the headroom times an even share, exact where floating point lands just above a whole number', () => {
    // 25,000 x 1.1 is 27,500.000000000004 in floating point: its ceiling let one agent more stay.
    assert.equal(Math.ceil((100_000 / 4) * FAIR_SHARE_HEADROOM), 27_501);
    assert.equal(fairShare(100_000, 4), 27_500);
    assert.equal(fairShare(30_000, 3), 11_000);
    assert.equal(fairShare(10, 4), 3);
    assert.equal(fairShare(40, 2), 22);
  });
});
