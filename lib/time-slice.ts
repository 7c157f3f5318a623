import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

/**
 * Longest a loop over a run's nodes holds the event loop before it lets other work in, in ms:
 * a loop over 100,000 nodes that does not yield holds it for seconds, while lease renewals,
 * heartbeats and the agents' messages wait.
 */
export const TIME_SLICE_MS = 10;

/** Items handled between two looks at the clock. */
const CLOCK_EVERY = 64;

/**
 * Calls `fn` on every item in order, yielding to the event loop (setImmediate: timers and I/O
 * run in between) whenever a slice of `sliceMs` has passed. A small list is handled in one go.
 */
export async function forEachSliced<T>(items: readonly T[], fn: (item: T, index: number) => void, sliceMs = TIME_SLICE_MS): Promise<void> {
  let sliceStart = performance.now();
  for (let i = 0; i < items.length; i++) {
    fn(items[i], i);
    if (i % CLOCK_EVERY === CLOCK_EVERY - 1 && performance.now() - sliceStart >= sliceMs) {
      await yieldToEventLoop();
      sliceStart = performance.now();
    }
  }
}
