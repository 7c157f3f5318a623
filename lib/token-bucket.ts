/**
 * A token bucket: `burst` tokens at most, refilled at `perS` tokens a second. Used wherever a
 * rate is limited (an agent's Connect stream, each caller's requests to a service).
 */

/** Options of a TokenBucket. */
export interface TokenBucketOptions {
  /** Tokens added per second; > 0. */
  perS: number;
  /** Most tokens held, and what a new bucket starts with; >= 1. */
  burst: number;
  /**
   * How far below zero charges may take the bucket, in tokens; default 0. With a floor below
   * zero, what a caller keeps sending while refused is counted too, so it must wait to get back.
   */
  floor?: number;
  /** Clock in ms (tests); default performance.now, which never goes backwards. */
  nowMs?: () => number;
}

/** One token bucket. */
export class TokenBucket {
  readonly perS: number;
  readonly burst: number;
  private readonly floor: number;
  private readonly nowMs: () => number;
  private tokens: number;
  private lastMs: number;

  constructor(options: TokenBucketOptions) {
    this.perS = options.perS;
    this.burst = options.burst;
    if (!(this.perS > 0) || !(this.burst >= 1)) throw new Error(`a token bucket needs a rate > 0 and a burst >= 1, got ${this.perS} and ${this.burst}`);
    this.floor = -(options.floor ?? 0);
    this.nowMs = options.nowMs ?? (() => performance.now());
    this.tokens = this.burst;
    this.lastMs = this.nowMs();
  }

  private refill(): void {
    const now = this.nowMs();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.lastMs) / 1000) * this.perS);
    this.lastMs = now;
  }

  /** Takes `cost` tokens if the bucket holds them: true; else takes none and gives false. */
  take(cost = 1): boolean {
    this.refill();
    if (this.tokens < cost) return false;
    this.tokens -= cost;
    return true;
  }

  /** Takes `cost` tokens whatever the bucket holds, down to its floor. */
  charge(cost: number): void {
    this.refill();
    this.tokens = Math.max(this.floor, this.tokens - cost);
  }

  /** Ms until the bucket holds `cost` tokens again; 0 when it does now. */
  msUntil(cost = 1): number {
    this.refill();
    return this.tokens >= cost ? 0 : Math.ceil(((cost - this.tokens) / this.perS) * 1000);
  }

  /** True when the bucket is full (a bucket that nobody has used for a while). */
  full(): boolean {
    this.refill();
    return this.tokens >= this.burst;
  }
}
