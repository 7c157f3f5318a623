import { UnavailableError } from '../../lib/errors';

/** Hellos being registered at once (validated, node being written to the index) above which more are refused. */
export const DEFAULT_MAX_CONCURRENT_HELLOS = 200;

/** Retry delay a refused agent is given, in ms, before the jitter. */
export const DEFAULT_HELLO_RETRY_DELAY_MS = 2_000;

/** Options of HelloAdmission. */
export interface HelloAdmissionOptions {
  /** Most Hellos registered at once; default DEFAULT_MAX_CONCURRENT_HELLOS. */
  maxConcurrent?: number;
  /** Retry delay given to a refused agent, in ms; default DEFAULT_HELLO_RETRY_DELAY_MS. */
  retryDelayMs?: number;
}

/**
 * Admission control of agent Hellos: when a whole fleet reconnects at once (a scheduler
 * replica died, the network came back), registering every node together would queue thousands
 * of index writes behind each other and time every agent out. At most `maxConcurrent` Hellos
 * are registered at a time; one over that is refused with UNAVAILABLE and a RetryInfo whose
 * delay is spread over 0.5-1.5 times `retryDelayMs`, so the refused agents come back spread out
 * (or go to another replica) instead of as the next storm.
 */
export class HelloAdmission {
  readonly maxConcurrent: number;
  readonly retryDelayMs: number;
  private active = 0;
  /** Hellos refused so far. */
  refused = 0;

  constructor(
    options: HelloAdmissionOptions = {},
    private readonly random: () => number = Math.random,
  ) {
    this.maxConcurrent = options.maxConcurrent ?? DEFAULT_MAX_CONCURRENT_HELLOS;
    this.retryDelayMs = options.retryDelayMs ?? DEFAULT_HELLO_RETRY_DELAY_MS;
  }

  /** Hellos being registered now. */
  get inFlight(): number {
    return this.active;
  }

  /** Takes a slot for one Hello; undefined when admitted (call `leave` once it is registered), else the refusal to end the stream with. */
  enter(): UnavailableError | undefined {
    if (this.active < this.maxConcurrent) {
      this.active++;
      return undefined;
    }
    this.refused++;
    const delayMs = this.spreadDelayMs();
    return new UnavailableError(`the scheduler is registering ${this.active} agents already; reconnect in ${delayMs} ms`, delayMs, 'TOO_MANY_HELLOS');
  }

  /** A retry delay for a refused Hello, spread over 0.5-1.5 times `retryDelayMs`. */
  spreadDelayMs(): number {
    return Math.round(this.retryDelayMs * (0.5 + this.random()));
  }

  /** Gives back the slot of an admitted Hello (registered, or failed). */
  leave(): void {
    this.active = Math.max(0, this.active - 1);
  }
}
