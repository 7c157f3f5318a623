import { UnavailableError } from '../../lib/errors';

/** Hellos registered at once that are always admitted, whatever the recent rate; above it the rate decides. */
export const DEFAULT_MAX_CONCURRENT_HELLOS = 200;

/** Retry delay a refused agent is given, in ms, before the jitter. */
export const DEFAULT_HELLO_RETRY_DELAY_MS = 2_000;

/**
 * Longest an admitted Hello is expected to wait for its Welcome, in ms, at the rate Hellos were
 * registered lately: well within the agent's own wait for a Welcome (30 s), so an admitted agent
 * is not timed out.
 */
export const HELLO_MAX_WAIT_MS = 10_000;

/** The window over which the registration rate is measured, in ms. */
const RATE_WINDOW_MS = 2_000;

/** Options of HelloAdmission. */
export interface HelloAdmissionOptions {
  /** Hellos always admitted at once; default DEFAULT_MAX_CONCURRENT_HELLOS. */
  maxConcurrent?: number;
  /** Retry delay given to a refused agent, in ms; default DEFAULT_HELLO_RETRY_DELAY_MS. */
  retryDelayMs?: number;
}

/**
 * Admission control of agent Hellos: when a whole fleet reconnects at once (a scheduler
 * replica died, the network came back), registering every node together would queue more index
 * writes than can be done before the agents give up waiting for their Welcome. A refusal is not
 * free either: the agent's stream, its reconnection and its next Hello cost both sides as much
 * as a registration, and the agent waits a retry delay on top. So the limit follows what the
 * replica achieves: a Hello is admitted while fewer than `maxConcurrent` are being registered,
 * or while those being registered would be done within HELLO_MAX_WAIT_MS at the rate Hellos
 * were registered over the last RATE_WINDOW_MS (a replica registering 800 a second admits 8,000
 * at once: every agent of a storm waits for its Welcome instead of coming back as the next
 * one). Above that it is refused with UNAVAILABLE and a RetryInfo whose delay is spread over
 * 0.5-1.5 times `retryDelayMs`, so the refused agents come back spread out (or go to another
 * replica) instead of as the next storm.
 */
export class HelloAdmission {
  readonly maxConcurrent: number;
  readonly retryDelayMs: number;
  private active = 0;
  /** Hellos refused so far. */
  refused = 0;
  /** Registrations finished in the current and the previous rate window, when the current one began and how long the previous one lasted. */
  private doneNow = 0;
  private donePrevious = 0;
  private previousMs = 0;
  private windowStartMs: number;

  constructor(
    options: HelloAdmissionOptions = {},
    private readonly random: () => number = Math.random,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.maxConcurrent = options.maxConcurrent ?? DEFAULT_MAX_CONCURRENT_HELLOS;
    this.retryDelayMs = options.retryDelayMs ?? DEFAULT_HELLO_RETRY_DELAY_MS;
    this.windowStartMs = this.now();
  }

  /** Hellos being registered now. */
  get inFlight(): number {
    return this.active;
  }

  /** Hellos registered per second lately (over up to two rate windows). */
  ratePerS(): number {
    this.roll();
    const elapsedMs = this.now() - this.windowStartMs + this.previousMs;
    return ((this.doneNow + this.donePrevious) * 1000) / Math.max(elapsedMs, RATE_WINDOW_MS / 4);
  }

  /** Most Hellos admitted at once now: `maxConcurrent`, or what the recent rate registers within HELLO_MAX_WAIT_MS. */
  limit(): number {
    return Math.max(this.maxConcurrent, Math.floor((this.ratePerS() * HELLO_MAX_WAIT_MS) / 1000));
  }

  /** Takes a slot for one Hello; undefined when admitted (call `leave` once it is registered), else the refusal to end the stream with. */
  enter(): UnavailableError | undefined {
    if (this.active < this.limit()) {
      this.active++;
      return undefined;
    }
    this.refused++;
    const delayMs = this.spreadDelayMs();
    return new UnavailableError(`the scheduler is registering ${this.active} agents already; reconnect in ${delayMs} ms`, delayMs, 'TOO_MANY_HELLOS');
  }

  /**
   * A retry delay for a refused Hello, spread over 0.5-1.5 times `retryDelayMs`. Not the time
   * the whole backlog takes: room is made with every registration that ends, and the spread
   * brings the refused agents back a few at a time.
   */
  spreadDelayMs(): number {
    return Math.round(this.retryDelayMs * (0.5 + this.random()));
  }

  /** Gives back the slot of an admitted Hello (registered, or failed). */
  leave(registered = true): void {
    this.active = Math.max(0, this.active - 1);
    if (!registered) return;
    this.roll();
    this.doneNow++;
  }

  /** Starts a new rate window when the current one is over. */
  private roll(): void {
    const nowMs = this.now();
    const passed = nowMs - this.windowStartMs;
    if (passed < RATE_WINDOW_MS) return;
    const adjacent = passed < 2 * RATE_WINDOW_MS;
    this.donePrevious = adjacent ? this.doneNow : 0;
    this.previousMs = adjacent ? passed : 0;
    this.doneNow = 0;
    this.windowStartMs = nowMs;
  }
}
