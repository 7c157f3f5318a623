/**
 * The heartbeat interval a replica asks of each agent in its Welcome. Heartbeats are what an
 * idle fleet costs (each one a message both ways and its share of a last-seen write), so a
 * replica holding many agents asks for fewer of them: the interval grows with the agents it
 * holds so that it hears about `heartbeatsPerS` of them per second, between the configured
 * interval and its maximum (docs/decisions.md "Heartbeats slow down as a replica fills").
 * Discovery judges every node against the maximum (node-index.ts), so a node is never stale
 * for the interval it was given.
 */

/** Default heartbeats per second a replica aims at, beyond which intervals grow (up to the maximum). */
export const DEFAULT_HEARTBEATS_PER_S = 1_000;

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
