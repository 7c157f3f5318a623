import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { UnavailableError } from '../../lib/errors';
import { HELLO_MAX_WAIT_MS, HelloAdmission } from './hello-admission';

/** An admission on a clock the test moves, with the jitter at its middle (random 0.5: factor 1). */
function admission(maxConcurrent: number, retryDelayMs: number) {
  let nowMs = 0;
  const a = new HelloAdmission(
    { maxConcurrent, retryDelayMs },
    () => 0.5,
    () => nowMs,
  );
  return { a, advance: (ms: number) => (nowMs += ms) };
}

/** Admits `n` Hellos; returns how many were refused. */
function offer(a: HelloAdmission, n: number): number {
  let refused = 0;
  for (let i = 0; i < n; i++) if (a.enter()) refused++;
  return refused;
}

describe('HelloAdmission', () => {
  it('admits maxConcurrent at once before any registration finished, and refuses more with the least retry delay', () => {
    const { a } = admission(10, 2_000);
    assert.equal(offer(a, 10), 0);
    const refusal = a.enter();
    assert.ok(refusal instanceof UnavailableError);
    assert.equal(refusal.retryDelayMs, 2_000);
    assert.equal(refusal.reason, 'TOO_MANY_HELLOS');
    assert.equal(a.refused, 1);
  });

  it('admits what the recent registration rate finishes within the longest wait, and refuses above it', () => {
    const { a, advance } = admission(10, 2_000);
    // 10 registrations in 100 ms, then 10 more: 200 a second over the last half second measured.
    for (let round = 0; round < 2; round++) {
      assert.equal(offer(a, 10), 0);
      advance(250);
      for (let i = 0; i < 10; i++) a.leave();
    }
    const expected = Math.floor((20 / 0.5) * (HELLO_MAX_WAIT_MS / 1000));
    assert.equal(a.limit(), expected);
    assert.equal(offer(a, expected), 0, 'a storm within what the replica registers in the longest wait is admitted whole');
    const refusal = a.enter();
    assert.ok(refusal instanceof UnavailableError, 'one more is refused');
    assert.equal(refusal.retryDelayMs, 2_000);
  });

  it('forgets the rate of a storm long over, and counts no failed registration', () => {
    const { a, advance } = admission(5, 1_000);
    offer(a, 5);
    advance(100);
    for (let i = 0; i < 5; i++) a.leave();
    assert.ok(a.limit() > 5);
    advance(10_000);
    assert.equal(a.limit(), 5, 'nothing registered in the last two windows: back to maxConcurrent');
    offer(a, 5);
    advance(100);
    for (let i = 0; i < 5; i++) a.leave(false);
    assert.equal(a.limit(), 5, 'failed registrations do not raise the rate');
    assert.equal(a.inFlight, 0);
  });
});
