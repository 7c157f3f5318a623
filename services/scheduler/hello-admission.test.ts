import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { UnavailableError } from '../../lib/errors';
import { HELLO_MAX_RETRY_DELAY_MS, HELLO_MAX_WAIT_MS, HelloAdmission } from './hello-admission';

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
    assert.equal(refusal.retryDelayMs, 2_000, 'no window spent loaded yet: the retry delay, not a slot at a rate measured on a few Hellos');
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

  /**
   * Gives `a` a rate (10 registered at once), then keeps `inFlight` Hellos in flight for `ms`,
   * `perStep` of them registered and replaced every 100 ms; those left in flight then fail.
   */
  function loaded(a: HelloAdmission, advance: (ms: number) => void, ms: number, perStep: number, inFlight = 15): void {
    assert.equal(offer(a, 10), 0);
    advance(100);
    for (let i = 0; i < 10; i++) a.leave();
    assert.equal(offer(a, inFlight), 0);
    for (let t = 0; t < ms; t += 100) {
      advance(100);
      assert.equal(offer(a, perStep), 0);
      for (let i = 0; i < perStep; i++) a.leave();
    }
    for (let i = 0; i < inFlight; i++) a.leave(false);
  }

  it('remembers the rate of a window spent loaded, and admits a storm after a quiet time at it', () => {
    const { a, advance } = admission(10, 2_000);
    // 5 registrations every 100 ms with 15 in flight throughout: 50 a second, loaded.
    loaded(a, advance, 4_000, 5);
    advance(30_000);
    assert.equal(a.ratePerS(), 0, 'nothing registered lately');
    assert.equal(a.capacityPerS(), 25, 'half the rate of the last loaded window');
    const limit = 25 * (HELLO_MAX_WAIT_MS / 1000);
    assert.equal(a.limit(), limit);
    assert.equal(offer(a, limit), 0, 'the first wave of a storm is admitted at the remembered capacity, not at maxConcurrent');
    assert.ok(a.enter() instanceof UnavailableError);
  });

  it('does not take a window for a loaded one when fewer than maxConcurrent were in flight at some time of it', () => {
    const { a, advance } = admission(10, 2_000);
    loaded(a, advance, 4_000, 5, 9);
    advance(30_000);
    assert.equal(a.capacityPerS(), 0);
    assert.equal(a.limit(), 10);
  });

  it('replaces the remembered capacity by a lower one measured loaded', () => {
    const { a, advance } = admission(10, 2_000);
    loaded(a, advance, 4_000, 5);
    loaded(a, advance, 4_000, 1);
    advance(30_000);
    assert.equal(a.capacityPerS(), 5, 'the last loaded window registered 10 a second: half of it');
  });

  it('gives refused agents successive slots at the capacity, from a quarter of the retry delay on, and spreads those past HELLO_MAX_RETRY_DELAY_MS', () => {
    const { a, advance } = admission(10, 2_000);
    loaded(a, advance, 4_000, 5);
    advance(30_000);
    assert.equal(offer(a, a.limit()), 0);
    const delays = Array.from({ length: 4 }, () => (a.enter() as UnavailableError).retryDelayMs);
    assert.deepEqual(delays, [500, 540, 580, 620], 'one registration (40 ms at 25 a second) apart');
    advance(10);
    assert.equal((a.enter() as UnavailableError).retryDelayMs, 650, 'the next slot, counted from now');
    // At 25 a second the 250th refused after these would be due in more than 10 s: those past
    // HELLO_MAX_RETRY_DELAY_MS are spread over its second half (random 0.5: three quarters).
    for (let i = 0; i < 250; i++) a.enter();
    assert.equal((a.enter() as UnavailableError).retryDelayMs, HELLO_MAX_RETRY_DELAY_MS * 0.75);
    const inFlight = a.inFlight;
    advance(HELLO_MAX_RETRY_DELAY_MS + 1_000);
    for (let i = 0; i < inFlight; i++) a.leave(false);
    assert.equal(offer(a, a.limit()), 0);
    assert.equal((a.enter() as UnavailableError).retryDelayMs, 500, 'slots given long ago are not counted again');
  });
});
