/**
 * The heartbeat interval a replica asks of each agent in its Welcome. Heartbeats are what an
 * idle fleet costs (each one a message both ways and its share of a last-seen write), so a
 * replica holding many agents asks for fewer of them: the interval grows with the agents it
 * holds so that it hears about `heartbeatsPerS` of them per second, between the configured
 * interval and its maximum (docs/decisions.md "Heartbeats slow down as a replica fills").
 * Discovery judges every node against the longest interval a live replica's agents hold
 * (HeldIntervals, noted in Redis at each lease renewal), so a node is never stale for the
 * interval it was given.
 */

/** Seconds between agent heartbeats when the scheduler's configuration sets none: the shortest interval it gives. */
export const DEFAULT_HEARTBEAT_INTERVAL_S = 10;

/** Default heartbeats per second a replica aims at, beyond which intervals grow (up to the maximum). */
export const DEFAULT_HEARTBEATS_PER_S = 1_000;

/**
 * The scheduler's longest heartbeat interval when its configuration sets none (or its
 * heartbeat-interval-s, when longer). At DEFAULT_HEARTBEATS_PER_S a replica reaches it holding
 * 100,000 agents, and one holding fewer than 10,000 gives every agent a 10 s interval
 * (docs/decisions.md "Heartbeats slow down as a replica fills").
 */
export const DEFAULT_HEARTBEAT_INTERVAL_MAX_S = 100;

/** How a replica picks intervals. */
export interface HeartbeatIntervalOptions {
  /** The configured interval, the shortest given, in s. */
  baseS: number;
  /** The longest interval given, in s; equal to baseS, every agent gets baseS. */
  maxS: number;
  /** Heartbeats per second the replica aims at. */
  heartbeatsPerS: number;
}

/** The interval, in s, for an agent welcomed while the replica holds `agents` sessions (itself included). */
export function heartbeatIntervalFor(agents: number, options: HeartbeatIntervalOptions): number {
  return Math.min(options.maxS, Math.max(options.baseS, Math.ceil(agents / options.heartbeatsPerS)));
}

/**
 * The intervals the agents a replica holds were given, counted per interval while their sessions
 * last: the longest is what the replica notes in Redis at each lease renewal (replica-lease.ts),
 * so that every replica's discovery judges a node's freshness against the longest interval an
 * agent may hold now, not the longest any replica may ever give.
 */
export class HeldIntervals {
  private readonly counts = new Map<number, number>();
  /**
   * The longest interval counted, kept as intervals come and go: discovery reads it once per
   * node it judges, and a replica may hold every interval from the shortest to the longest.
   */
  private longest = 0;

  /** An agent was welcomed with `intervalS`. */
  add(intervalS: number): void {
    this.counts.set(intervalS, (this.counts.get(intervalS) ?? 0) + 1);
    if (intervalS > this.longest) this.longest = intervalS;
  }

  /** A session welcomed with `intervalS` ended. */
  remove(intervalS: number): void {
    const left = (this.counts.get(intervalS) ?? 0) - 1;
    if (left > 0) {
      this.counts.set(intervalS, left);
      return;
    }
    this.counts.delete(intervalS);
    if (intervalS === this.longest) this.longest = Math.max(0, ...this.counts.keys());
  }

  /** The longest interval an agent held here was given, in s; 0 when none is held. */
  longestS(): number {
    return this.longest;
  }
}
