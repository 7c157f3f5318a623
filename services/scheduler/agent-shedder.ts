import type { RedisClient as Redis } from '../../lib/redis-client';
import { UnavailableError } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import { INDEX_CHUNK_NODES, type RedisKeys } from '../../lib/redis';
import type { AgentRegistry } from './agent-registry';
import type { AgentSession } from './agent-session';
import type { HelloAdmission } from './hello-admission';
import type { ReplicaLeaseEnd } from './replica-lease';

/** How often a replica compares its agents with its fair share, in ms. */
export const DEFAULT_REBALANCE_INTERVAL_MS = 5_000;
/** Most agents one replica sends away per interval: a scale-up moves agents a few hundred at a time. */
export const SHED_STEP = 200;
/** A replica keeps up to this factor of its fair share before sending agents away. */
export const FAIR_SHARE_HEADROOM = 1.1;
/**
 * The most agents one of `replicas` replicas keeps when `connected` are connected in all:
 * ceil(connected / replicas x FAIR_SHARE_HEADROOM), computed in integers (25,000 x 1.1 in
 * floating point is a little over 27,500, and its ceiling would let one agent more stay).
 */
export function fairShare(connected: number, replicas: number): number {
  return Math.ceil((connected * Math.round(FAIR_SHARE_HEADROOM * 100)) / (replicas * 100));
}

/** Retry delay given to an agent sent away, in ms: it then reconnects to its next scheduler. */
export const SHED_RETRY_DELAY_MS = 1_000;
/**
 * An agent sent away that is back here within this time, in ms, is kept: it knows no other
 * scheduler, or none it reached would take it, and sending it away again only churns.
 */
export const RETURN_KEEP_MS = 10 * 60_000;

/** What an AgentShedder works with. */
export interface AgentShedderOptions {
  redis: Redis;
  keys: RedisKeys;
  registry: AgentRegistry<AgentSession>;
  log: Logger;
  /** Interval between checks, in ms; default DEFAULT_REBALANCE_INTERVAL_MS. */
  intervalMs?: number;
  /** How long a replica lease lasts without renewal, in ms (the replicas' replica-lease-s). */
  leaseMs: number;
  /** The replica's admission control of Hellos: no agent is sent away while a storm of them comes in. */
  admission?: HelloAdmission;
}

/**
 * Rebalances agents after a scale-up: agents stay with the replica they reached, so a new
 * replica would get none until the others restart. Every interval a replica compares the
 * agents it holds with its fair share, ceil(connected agents / live replicas) times
 * FAIR_SHARE_HEADROOM (the replica count comes from the replica leases, the connected agents
 * from the index chunks' online sets), and ends the streams of at most SHED_STEP of its most recently
 * registered agents above it, with UNAVAILABLE REBALANCING and a retry delay. Those agents
 * reconnect to their next scheduler address after the delay; their tasks go on (a stream that
 * ends never stops a task), and their runs do not note them away.
 *
 * Two rules keep it from churning. The live replicas must have been the same for two lease
 * periods: a replica killed a moment ago holds its lease a while, and sending agents towards it
 * (after a restart, the survivor holds every agent) would only disconnect them, with a gap in
 * every run being discovered meanwhile; within two periods its lease has ended. And an agent
 * that comes back within RETURN_KEEP_MS of being sent away is kept: it knows no other
 * scheduler, or none that would take it.
 */
export class AgentShedder {
  private replicas = 1;
  private live = '';
  /** Since when the live replicas have been the same, ms since the epoch (local clock). */
  private liveSinceMs = Date.now();
  private timer: NodeJS.Timeout | undefined;
  /** Agents sent away, by identity: when (ms since the epoch). */
  private readonly sentAway = new Map<string, number>();
  /** Hellos the admission had refused at the previous comparison. */
  private refusedSeen = 0;

  constructor(private readonly options: AgentShedderOptions) {}

  /** After each replica lease renewal: the replicas and when each one's lease ends, on the Redis clock at `nowMs`. */
  onPeers(peers: ReplicaLeaseEnd[], nowMs: number): void {
    const live = peers
      .filter((p) => p.endsMs >= nowMs)
      .map((p) => p.id)
      .sort();
    const key = live.join(' ');
    if (key !== this.live) {
      this.live = key;
      this.liveSinceMs = Date.now();
    }
    this.replicas = Math.max(1, live.length);
  }

  start(): void {
    const { log } = this.options;
    this.timer = setInterval(() => {
      this.tick().catch((err: unknown) => log.warn({ err: (err as Error).message }, 'could not compare the agents with the fair share'));
    }, this.options.intervalMs ?? DEFAULT_REBALANCE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /**
   * True while agents arrive faster than a comparison sends them away, or some were refused
   * since the last comparison: a replica died, or the fleet reconnects. Sending agents away
   * then only adds to the storm (and the counts are moving); the comparison waits for it to end.
   */
  private storming(): boolean {
    const { admission } = this.options;
    if (!admission) return false;
    const refused = admission.refused !== this.refusedSeen;
    this.refusedSeen = admission.refused;
    const intervalS = (this.options.intervalMs ?? DEFAULT_REBALANCE_INTERVAL_MS) / 1000;
    return refused || admission.ratePerS() * intervalS > SHED_STEP;
  }

  /** One comparison; resolves with the number of agents sent away. */
  async tick(): Promise<number> {
    const nowMs = Date.now();
    if (this.replicas < 2 || nowMs - this.liveSinceMs < 2 * this.options.leaseMs || this.storming()) return 0;
    const { redis, keys, registry, log } = this.options;
    for (const [identity, at] of this.sentAway) if (nowMs - at > RETURN_KEEP_MS) this.sentAway.delete(identity);
    const chunks = Math.ceil((await redis.llen(keys.nodeNames())) / INDEX_CHUNK_NODES);
    const total = (await Promise.all(Array.from({ length: chunks }, (_, c) => redis.zcard(keys.online(c))))).reduce((a, b) => a + b, 0);
    const fair = fairShare(total, this.replicas);
    // Agents that came within two lease periods are left out, counted and sent: a replica that
    // died a moment ago still holds its lease, and its agents all come to the survivors, which
    // would otherwise send some of them straight back towards the dead one (with a gap in their
    // runs while they find it refusing). Once its lease ends the live replicas change, which
    // holds every comparison for two more periods.
    const held = registry.all().filter((s) => s.ready && nowMs - s.openedMs >= 2 * this.options.leaseMs);
    const over = held.length - fair;
    if (over <= 0) return 0;
    const away = held.filter((s) => !this.sentAway.has(s.identity)).slice(-Math.min(over, SHED_STEP));
    if (away.length === 0) return 0;
    for (const session of away) this.sentAway.set(session.identity, nowMs);
    log.info(
      { held: held.length, fair, replicas: this.replicas, connected: total, sending: away.length },
      'above the fair share of agents; sending some to other replicas',
    );
    const reason = `rebalancing: this scheduler holds ${held.length} agents, above its fair share of ${fair} over ${this.replicas} replicas; reconnect to another`;
    for (const session of away) void session.close(new UnavailableError(reason, SHED_RETRY_DELAY_MS, 'REBALANCING'), { draining: true });
    return away.length;
  }
}
