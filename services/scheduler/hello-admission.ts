import { TOO_MANY_HELLOS, UnavailableError } from '../../lib/errors';

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

/**
 * Longest retry delay given to a refused agent, in ms: no longer than an admitted Hello may wait
 * for its Welcome. A backlog that needs longer brings its last agents back spread over the second
 * half of it, to this replica or the next one they know, and they are given slots again then.
 */
export const HELLO_MAX_RETRY_DELAY_MS = HELLO_MAX_WAIT_MS;

/**
 * The share of the rate of its last loaded window a replica counts on when the recent rate is
 * lower: a storm that comes during a run meets a replica busier than the one that registered the
 * fleet (results, the run's commands), which registers fewer Hellos a second, and Hellos
 * admitted at the whole of the old rate would wait for their Welcome far longer than
 * HELLO_MAX_WAIT_MS, up to the agent's own limit. The recent rate takes over within a window.
 */
const REMEMBERED_RATE_SHARE = 0.5;

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
 * or while those being registered would be done within HELLO_MAX_WAIT_MS at the replica's
 * registration capacity (a replica registering 800 a second admits 8,000 at once: every agent
 * of a storm waits for its Welcome instead of coming back as the next one).
 *
 * The capacity is the rate of the last RATE_WINDOW_MS, or, when that is higher, a share
 * (REMEMBERED_RATE_SHARE) of the rate of the last whole window during which the replica was
 * registering at least `maxConcurrent` Hellos throughout (loaded, so the rate was what it could
 * do, not what came). A storm begins
 * after a quiet time, when the recent rate is nothing: without that memory a replica would admit
 * `maxConcurrent` and refuse the rest of the storm's first wave while it measured again.
 *
 * A refused Hello is answered UNAVAILABLE with a RetryInfo naming when the replica expects room
 * for it: the refused agents are given successive slots, one per registration at the capacity
 * (the n-th refused since the backlog began comes back after about n / capacity), so that they
 * return as fast as room is made and no faster, however large the storm. A fixed delay either
 * brings a large backlog back as the next storm (refused again, each refusal costing as much as
 * a registration) or leaves capacity idle while a small one waits it out. Before the replica
 * spent a whole window loaded, the delay is spread over 0.5-1.5 times `retryDelayMs`.
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
  /** Whether fewer than `maxConcurrent` Hellos were being registered at some time in the current window. */
  private dippedNow = true;
  /** Registrations per second of the last whole window the replica spent loaded; 0 before any. */
  private loadedRatePerS = 0;
  /** When the last refused agent was told to come back (performance clock, ms). */
  private lastSlotMs = 0;

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

  /** Hellos the replica registers per second when loaded: the recent rate, or REMEMBERED_RATE_SHARE of that of its last loaded window when higher; 0 when neither is known. */
  capacityPerS(): number {
    return Math.max(this.ratePerS(), this.loadedRatePerS * REMEMBERED_RATE_SHARE);
  }

  /** Most Hellos admitted at once now: `maxConcurrent`, or what the capacity registers within HELLO_MAX_WAIT_MS. */
  limit(): number {
    return Math.max(this.maxConcurrent, Math.floor((this.capacityPerS() * HELLO_MAX_WAIT_MS) / 1000));
  }

  /** Takes a slot for one Hello; undefined when admitted (call `leave` once it is registered), else the refusal to end the stream with. */
  enter(): UnavailableError | undefined {
    if (this.active < this.limit()) {
      this.active++;
      return undefined;
    }
    this.refused++;
    const delayMs = this.refusalDelayMs();
    // A refusal is an answer, not a failure: its stack is never read, and capturing one (through
    // gRPC's and HTTP/2's frames) for each of a storm's thousands of refusals was a visible part
    // of a survivor's CPU time.
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return new UnavailableError(`the scheduler is registering ${this.active} agents already; reconnect in ${delayMs} ms`, delayMs, TOO_MANY_HELLOS);
    } finally {
      Error.stackTraceLimit = stackTraceLimit;
    }
  }

  /**
   * The retry delay of a refused Hello: the next slot after the last one given, one
   * registration's time at the capacity apart, counted from now when the last slot has passed
   * (at least a quarter of `retryDelayMs`, so that an agent does not come back before the
   * Hellos just admitted made any room). Past HELLO_MAX_RETRY_DELAY_MS, spread over its second
   * half. Before any window spent loaded, `spreadDelayMs`.
   */
  refusalDelayMs(): number {
    // Only a capacity measured loaded says how fast room is made: the rate of a storm's first
    // moments is that of its first few Hellos, and slots given at it would leave the replica idle.
    if (this.loadedRatePerS <= 0) return this.spreadDelayMs();
    const capacityPerS = this.capacityPerS();
    const nowMs = this.now();
    const slotMs = Math.max(this.lastSlotMs + 1000 / capacityPerS, nowMs + this.retryDelayMs / 4);
    if (slotMs - nowMs > HELLO_MAX_RETRY_DELAY_MS) return Math.round(HELLO_MAX_RETRY_DELAY_MS * (0.5 + this.random() / 2));
    this.lastSlotMs = slotMs;
    return Math.round(slotMs - nowMs);
  }

  /**
   * A retry delay spread over 0.5-1.5 times `retryDelayMs`: for a refusal while the replica
   * cannot say when it will have room (no capacity measured, Redis out).
   */
  spreadDelayMs(): number {
    return Math.round(this.retryDelayMs * (0.5 + this.random()));
  }

  /** Gives back the slot of an admitted Hello (registered, or failed). */
  leave(registered = true): void {
    this.active = Math.max(0, this.active - 1);
    this.roll();
    if (this.active < this.maxConcurrent) this.dippedNow = true;
    if (registered) this.doneNow++;
  }

  /** Starts a new rate window when the current one is over; a loaded window's rate is kept as the capacity. */
  private roll(): void {
    const nowMs = this.now();
    const passed = nowMs - this.windowStartMs;
    if (passed < RATE_WINDOW_MS) return;
    const adjacent = passed < 2 * RATE_WINDOW_MS;
    if (adjacent && !this.dippedNow) this.loadedRatePerS = (this.doneNow * 1000) / passed;
    this.donePrevious = adjacent ? this.doneNow : 0;
    this.previousMs = adjacent ? passed : 0;
    this.doneNow = 0;
    this.windowStartMs = nowMs;
    this.dippedNow = this.active < this.maxConcurrent;
  }
}
