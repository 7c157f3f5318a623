import type Redis from 'ioredis';
import { UnavailableError } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import type { RedisKeys } from '../../lib/redis';
import type { AgentRegistry } from './agent-registry';
import type { AgentSession } from './agent-session';

/** How often a replica compares its agents with its fair share, in ms. */
export const DEFAULT_REBALANCE_INTERVAL_MS = 5_000;
/** Most agents one replica sends away per interval: a scale-up moves agents a few hundred at a time. */
export const SHED_STEP = 200;
/** A replica keeps up to this factor of its fair share before sending agents away. */
export const FAIR_SHARE_HEADROOM = 1.1;
/** Retry delay given to an agent sent away, in ms: it then reconnects to its next scheduler. */
export const SHED_RETRY_DELAY_MS = 1_000;

/** What an AgentShedder works with. */
export interface AgentShedderOptions {
  redis: Redis;
  keys: RedisKeys;
  registry: AgentRegistry<AgentSession>;
  log: Logger;
  /** Interval between checks, in ms; default DEFAULT_REBALANCE_INTERVAL_MS. */
  intervalMs?: number;
}

/**
 * Rebalances agents after a scale-up: agents stay with the replica they reached, so a new
 * replica would get none until the others restart. Every interval a replica compares the
 * agents it holds with its fair share, ceil(connected agents / live replicas) times
 * FAIR_SHARE_HEADROOM (the replica count comes from the replica leases, the connected agents
 * from the index's online set), and ends the streams of at most SHED_STEP of its most recently
 * registered agents above it, with UNAVAILABLE REBALANCING and a retry delay. Those agents
 * reconnect to their next scheduler address after the delay; their tasks go on (a stream that
 * ends never stops a task), and their runs do not note them away.
 */
export class AgentShedder {
  private replicas = 1;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: AgentShedderOptions) {}

  /** The live replicas changed (replica lease renewal). */
  onPeers(count: number): void {
    this.replicas = Math.max(1, count);
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

  /** One comparison; resolves with the number of agents sent away. */
  async tick(): Promise<number> {
    if (this.replicas < 2) return 0;
    const { redis, keys, registry, log } = this.options;
    const total = await redis.zcard(keys.online());
    const fair = Math.ceil((total / this.replicas) * FAIR_SHARE_HEADROOM);
    const held = registry.all().filter((s) => s.ready);
    const over = held.length - fair;
    if (over <= 0) return 0;
    const away = held.slice(-Math.min(over, SHED_STEP));
    log.info({ held: held.length, fair, replicas: this.replicas, connected: total, sending: away.length }, 'above the fair share of agents; sending some to other replicas');
    const reason = `rebalancing: this scheduler holds ${held.length} agents, above its fair share of ${fair} over ${this.replicas} replicas; reconnect to another`;
    for (const session of away) void session.close(new UnavailableError(reason, SHED_RETRY_DELAY_MS, 'REBALANCING'), { draining: true });
    return away.length;
  }
}
