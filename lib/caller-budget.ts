import { ResourceExhaustedError } from './errors';
import { peerOf, type AuthenticatedCall } from './peer-identity';
import { TokenBucket } from './token-bucket';

/**
 * What each caller may ask of one service: a token bucket per authenticated caller (the
 * certificate's role and name, lib/peer-identity.ts), so that one caller sending request after
 * request (bad ones above all) cannot take a shared service's time from everyone else. Every
 * call (a unary call or the start of a stream) costs one token, taken as its metadata arrives
 * and before its message is even decoded; a call refused as bad input (INVALID_ARGUMENT) costs
 * REFUSED_REQUEST_COST in all. A caller without tokens gets RESOURCE_EXHAUSTED, one line with a
 * retry delay (also as `google.rpc.RetryInfo`); what it sends while refused is counted too, down
 * to one burst below empty, so a caller that does not wait stays refused. The refusal is held
 * back until the caller's next token is due (at most MAX_REFUSAL_HOLD_MS, and for at most
 * MAX_HELD_REFUSALS calls of one caller at a time): a client that retries the moment it is
 * refused would otherwise turn refusals into a flood of its own.
 *
 * Services are not limited: the scheduler calls the metadata and results services on behalf
 * of every operator and agent, so its budget would be everyone's. Neither are plaintext
 * (`insecure`) callers, who name themselves and could take a new name for every call.
 * docs/security.md "Callers" gives the settings and why the defaults are what they are.
 */

/** Default sustained requests per second of one caller at one service. */
export const DEFAULT_CALLER_REQUESTS_PER_S = 100;

/** Default burst: requests one caller may make at once above the sustained rate. */
export const DEFAULT_CALLER_REQUEST_BURST = 500;

/** What a call refused as bad input (INVALID_ARGUMENT) costs its caller, in tokens, in all. */
export const REFUSED_REQUEST_COST = 10;

/** Reason in the ErrorInfo of a call refused because its caller is over its budget. */
export const CALLER_RATE_REASON = 'CALLER_RATE_LIMITED';

/** Longest a refusal is held back before it is sent, in ms. */
export const MAX_REFUSAL_HOLD_MS = 1_000;

/** Most refusals of one caller held back at a time; past it, refusals are sent at once. */
export const MAX_HELD_REFUSALS = 16;

/** Most callers whose buckets are kept; past it, full (idle) buckets are dropped first. */
const MAX_TRACKED_CALLERS = 10_000;

/** Options of CallerBudgets. */
export interface CallerBudgetOptions {
  /** Sustained requests per second of one caller; 0 turns the budget off. Default DEFAULT_CALLER_REQUESTS_PER_S. */
  requestsPerS?: number;
  /** Requests one caller may make at once; default DEFAULT_CALLER_REQUEST_BURST. */
  burst?: number;
  /** Clock in ms (tests); default performance.now. */
  nowMs?: () => number;
}

/** A caller's bucket, whether it is being refused now (to log once per time it goes over), and its refusals held back. */
interface CallerState {
  bucket: TokenBucket;
  over: boolean;
  held: number;
}

/** An admission refused: how long to hold the refusal back, and whether this caller just went over (log it). */
export interface OverBudget {
  caller: string;
  /** Ms to hold the refusal back; 0 to send it at once. Call `CallerBudgets.refusal` when sending it. */
  holdMs: number;
  first: boolean;
}

/** The request budgets of every caller of one server. */
export class CallerBudgets {
  readonly requestsPerS: number;
  readonly burst: number;
  private readonly nowMs?: () => number;
  private readonly callers = new Map<string, CallerState>();

  constructor(options: CallerBudgetOptions = {}) {
    this.requestsPerS = options.requestsPerS ?? DEFAULT_CALLER_REQUESTS_PER_S;
    this.burst = options.burst ?? DEFAULT_CALLER_REQUEST_BURST;
    if (!(this.requestsPerS >= 0) || !(this.burst >= 1))
      throw new Error(`caller budgets need requestsPerS >= 0 and burst >= 1, got ${this.requestsPerS} and ${this.burst}`);
    this.nowMs = options.nowMs;
  }

  /** The caller a budget applies to (`<role>:<name>`); undefined for services, plaintext calls, or when budgets are off. */
  callerOf(call: AuthenticatedCall): string | undefined {
    if (this.requestsPerS === 0) return undefined;
    const peer = peerOf(call);
    if (!peer || peer.role === undefined || peer.role === 'service') return undefined;
    return `${peer.role}:${peer.name}`;
  }

  private state(caller: string): CallerState {
    let s = this.callers.get(caller);
    if (!s) {
      if (this.callers.size >= MAX_TRACKED_CALLERS) this.forgetIdle();
      s = { bucket: new TokenBucket({ perS: this.requestsPerS, burst: this.burst, floor: this.burst, nowMs: this.nowMs }), over: false, held: 0 };
      this.callers.set(caller, s);
    }
    return s;
  }

  /** Drops the buckets of callers that have not called for a while (full ones), or the oldest when none is. */
  private forgetIdle(): void {
    for (const [caller, s] of this.callers) if (s.held === 0 && s.bucket.full()) this.callers.delete(caller);
    if (this.callers.size >= MAX_TRACKED_CALLERS) this.callers.delete(this.callers.keys().next().value as string);
  }

  /** Takes one call's token: undefined when the caller may go on, else how to refuse it. */
  admit(caller: string): OverBudget | undefined {
    const s = this.state(caller);
    if (s.bucket.take()) {
      s.over = false;
      return undefined;
    }
    s.bucket.charge(1);
    const first = !s.over;
    s.over = true;
    const holdMs = s.held < MAX_HELD_REFUSALS ? Math.min(s.bucket.msUntil(), MAX_REFUSAL_HOLD_MS) : 0;
    if (holdMs > 0) s.held += 1;
    return { caller, holdMs, first };
  }

  /** The refusal of a call `admit` refused, with the retry delay as it is now; ends its hold. */
  refusal(over: OverBudget): ResourceExhaustedError {
    const s = this.state(over.caller);
    if (over.holdMs > 0) s.held = Math.max(0, s.held - 1);
    const retryMs = s.bucket.msUntil();
    const name = `cert=${over.caller.slice(over.caller.indexOf(':') + 1)}`;
    return new ResourceExhaustedError(
      CALLER_RATE_REASON,
      // A refusal held back until the caller's next token is due says so: it may retry now.
      `${name} is over its request budget at this service (${this.requestsPerS} a second, bursts of ${this.burst}; a refused request counts as ${REFUSED_REQUEST_COST}); ${retryMs > 0 ? `retry in ${(retryMs / 1000).toFixed(1)} s` : 'retry now'}`,
      retryMs,
      { caller: name, retry_delay_ms: String(retryMs) },
    );
  }

  /** Charges a call refused as bad input the rest of REFUSED_REQUEST_COST. */
  refused(caller: string): void {
    this.state(caller).bucket.charge(REFUSED_REQUEST_COST - 1);
  }
}
