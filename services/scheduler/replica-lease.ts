import { hostname } from 'node:os';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { EVENT_LOOP_SAMPLE_MS } from '../../lib/metrics';
import type { RedisClient as Redis } from '../../lib/redis-client';
import { LuaScript } from '../../lib/lua-script';
import type { Logger } from '../../lib/logger';
import type { RedisKeys } from '../../lib/redis';
import { errorText } from './error-text';

/** How long a replica's lease lasts without renewal, in ms; it is renewed every RENEWALS_PER_LEASE-th of that. */
export const DEFAULT_REPLICA_LEASE_MS = 10_000;

/**
 * Renewals per lease period. A replica fences itself when none succeeded for nine tenths of a
 * lease: renewing five times a period, one renewal delayed or lost (a stalled event loop, a
 * slow Redis) still leaves others before that point. A renewal is one small script.
 */
export const RENEWALS_PER_LEASE = 5;

/**
 * What a replica name may be: it is part of Redis key names (with the epoch, as the replica id),
 * so no braces, colons or spaces.
 */
export const REPLICA_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$/;

/** The default replica name: the host name (a pod's name under Kubernetes). */
export function defaultReplicaName(): string {
  return (
    hostname()
      .replace(/[^A-Za-z0-9._-]/g, '-')
      .replace(/^[^A-Za-z0-9]+/, '')
      .slice(0, 50) || 'scheduler'
  );
}

/** Renewals whose round trip and Redis clock are kept, to learn the Redis clock's offset from. */
const CLOCK_SAMPLES = 30;

/** A local clock that only goes forward (ms): lease validity never moves with the wall clock. */
function monotonicMs(): number {
  return performance.now();
}

/** Takes a fencing epoch and a lease under a new replica id, on the Redis clock. */
const JOIN_SCRIPT = LuaScript.fromFile(__dirname, 'replica-join-2');

/** Renews a replica's lease while it has not ended, answering every replica's lease. */
const RENEW_SCRIPT = LuaScript.fromFile(__dirname, 'replica-renew-2');

/** The replicas whose lease has ended, or those whose lease runs, on the Redis clock. */
const LEASES_SCRIPT = LuaScript.fromFile(__dirname, 'replica-leases-1');

/** Ends a replica's lease at once (a clean shutdown). */
const LEAVE_SCRIPT = LuaScript.fromFile(__dirname, 'replica-leave-1');

/** Forgets a replica whose lease ended, once survivors have taken over what it held. */
const FORGET_SCRIPT = LuaScript.fromFile(__dirname, 'replica-forget-2');

/**
 * Lease states:
 * - JOINING: no lease yet (starting, or Redis unreachable since the start);
 * - HELD: the lease is renewed in time; the replica serves agents and dispatch entries;
 * - FENCED: the lease could not be renewed before it ended: the replica has ended its agent
 *   streams and takes no work until it joins again, as a new replica (new epoch, new id);
 * - LEFT: `stop` ended the lease.
 */
export type LeaseState = 'JOINING' | 'HELD' | 'FENCED' | 'LEFT';

/** A replica and when its lease ends (ms, Redis clock; 0 when it left or was reaped). */
export interface ReplicaLeaseEnd {
  id: string;
  endsMs: number;
}

/** Options of `ReplicaLease`. */
export interface ReplicaLeaseOptions {
  /** This replica's name, its id without the epoch; default `defaultReplicaName()`. */
  name?: string;
  /** Lease length in ms; default DEFAULT_REPLICA_LEASE_MS. */
  leaseMs?: number;
  /** Called when the lease is lost: end every agent stream, take no work. */
  onFenced?: (reason: string) => void;
  /** Called when a lease is taken (at the start, and again after being fenced), with the new id. */
  onHeld?: (id: string, epoch: number) => void;
  /** Called after every renewal with every replica's lease end and the Redis clock. */
  onPeers?: (peers: ReplicaLeaseEnd[], nowMs: number) => void;
  /**
   * The longest heartbeat interval the agents this replica holds were given, in s: noted in
   * Redis at each renewal, for every replica's discovery to judge freshness by
   * (`longestHeartbeatIntervalS`). Default: none noted.
   */
  heldHeartbeatIntervalS?: () => number;
  /**
   * The connection joins, renewals and the leave go on; default the one the lease was given.
   * A connection of its own keeps a renewal from queueing behind the replica's other commands
   * (a registration storm's index writes, a run's dispatch) and their replies.
   */
  renewalRedis?: Redis;
}

/**
 * This scheduler replica's identity in Redis: a fencing epoch (INCR) and a lease renewed
 * RENEWALS_PER_LEASE times per length. A replica that cannot confirm its lease before it ends fences itself
 * (onFenced) rather than go on as a replica the others may already count as dead.
 */
export class ReplicaLease {
  /** The replica name (configured), its ids' prefix. */
  readonly name: string;
  /** Lease length, ms. */
  readonly leaseMs: number;
  private epochValue = 0;
  private idValue = '';
  private stateValue: LeaseState = 'JOINING';
  /**
   * Local time (monotonic clock, ms) until which the lease is surely held: when the last
   * successful renewal ran in Redis (renewalRanAt), plus the lease, less a margin.
   */
  private validUntilMs = 0;
  private timer: NodeJS.Timeout | undefined;
  /** A join in flight (one at a time). */
  private joining = false;
  /** Renewals sent and not answered yet. */
  private renewalsInFlight = 0;
  /** When the last renewal that succeeded ran in Redis (monotonic clock, ms). */
  private lastRenewedMs = 0;
  /** The last renewals' round trips and the offset of the Redis clock they showed (renewalRanAt). */
  private readonly clockSamples: Array<{ roundTripMs: number; offsetMs: number }> = [];
  /**
   * How late the event loop ran since the last renewal: a replica that fences itself while Redis
   * answers was stalled (CPU starved, a long synchronous task), and the log says by how much.
   */
  private readonly loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_SAMPLE_MS });
  /** Where joins, renewals and the leave go (ReplicaLeaseOptions.renewalRedis). */
  private readonly renewalRedis: Redis;
  /**
   * The longest heartbeat interval noted by a replica whose lease ran at the last renewal, in
   * s; undefined before the first renewal, or when a live replica noted none (one of a version
   * that does not note it).
   */
  private peersIntervalS: number | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly log: Logger,
    private readonly options: ReplicaLeaseOptions = {},
  ) {
    this.name = options.name ?? defaultReplicaName();
    if (!REPLICA_NAME_PATTERN.test(this.name))
      throw new Error(`replica name '${this.name.slice(0, 80)}' is not valid; expected ${REPLICA_NAME_PATTERN.source}`);
    this.leaseMs = options.leaseMs ?? DEFAULT_REPLICA_LEASE_MS;
    this.renewalRedis = options.renewalRedis ?? redis;
  }

  /** The replica id of the current lease, `<name>-<epoch>` ('' before the first). */
  get id(): string {
    return this.idValue;
  }

  /** The fencing epoch of the current lease (0 before the first). */
  get epoch(): number {
    return this.epochValue;
  }

  get state(): LeaseState {
    return this.stateValue;
  }

  /** True while the lease is held. */
  get held(): boolean {
    return this.stateValue === 'HELD';
  }

  /** Starts renewing the lease and takes it (waits for Redis); when that fails, a later renewal period takes it. */
  async start(): Promise<void> {
    this.timer = setInterval(() => void this.tick(), Math.max(50, Math.floor(this.leaseMs / RENEWALS_PER_LEASE)));
    this.timer.unref();
    this.loopDelay.enable();
    this.joining = true;
    try {
      await this.join();
    } finally {
      this.joining = false;
    }
  }

  /** Stops renewing and ends the lease in Redis (best effort). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.loopDelay.disable();
    const was = this.stateValue;
    this.stateValue = 'LEFT';
    if (was !== 'HELD') return;
    try {
      await LEAVE_SCRIPT.run(this.renewalRedis, [this.keys.replicaLeases()], [this.idValue]);
    } catch (err) {
      this.log.warn({ err: errorText(err) }, 'could not end the replica lease; it ends by itself');
    }
  }

  /** The replicas whose lease has ended (dead, left, or fenced and not back), on the Redis clock. */
  async expired(): Promise<string[]> {
    return (await LEASES_SCRIPT.run(this.redis, [this.keys.replicaLeases()], ['ended'])) as string[];
  }

  /** Forgets replica `id` if its lease has ended (after its nodes and backlog were taken over); false when it runs. */
  async forget(id: string): Promise<boolean> {
    return Number(await FORGET_SCRIPT.run(this.redis, [this.keys.replicaLeases(), this.keys.replicaHeartbeatIntervals()], [id])) === 1;
  }

  /**
   * The longest heartbeat interval an agent of a live replica may hold, in s, as of the last
   * renewal (this replica's own as it is now): what a node's freshness is judged against.
   * `fallbackS` (the longest any replica may give) when that is not known: before the first
   * renewal, or while a live replica has noted none.
   */
  longestHeartbeatIntervalS(fallbackS: number): number {
    if (this.peersIntervalS === undefined) return fallbackS;
    return Math.max(this.peersIntervalS, this.options.heldHeartbeatIntervalS?.() ?? 0);
  }

  /** The replicas whose lease runs, this one included while it holds its own. */
  async live(): Promise<string[]> {
    return (await LEASES_SCRIPT.run(this.redis, [this.keys.replicaLeases()], ['live'])) as string[];
  }

  private async join(): Promise<void> {
    const sentMs = monotonicMs();
    const [epochReply, id] = (await JOIN_SCRIPT.run(
      this.renewalRedis,
      [this.keys.replicaEpochCounter(), this.keys.replicaLeases()],
      [this.name, this.leaseMs],
    )) as [number, string];
    if (this.stateValue === 'LEFT') return;
    const epoch = Number(epochReply);
    this.epochValue = epoch;
    this.idValue = String(id);
    this.validUntilMs = sentMs + this.leaseMs - this.marginMs();
    this.lastRenewedMs = sentMs;
    this.stateValue = 'HELD';
    this.log.info({ replica: this.idValue, leaseMs: this.leaseMs }, 'replica lease taken');
    this.options.onHeld?.(this.idValue, epoch);
  }

  /** Time before the end of the lease at which the replica gives up on it: a tenth of the lease. */
  private marginMs(): number {
    return Math.floor(this.leaseMs / 10);
  }

  private fence(reason: string): void {
    if (this.stateValue !== 'HELD') return;
    this.stateValue = 'FENCED';
    this.log.warn({ replica: this.idValue, reason }, 'replica lease lost; agent streams ended until a new lease is taken');
    this.options.onFenced?.(reason);
  }

  /** One renewal period: fence if the lease may have ended, renew it (or join again when fenced). */
  private async tick(): Promise<void> {
    if (this.stateValue === 'HELD' && monotonicMs() >= this.validUntilMs) {
      const sinceS = ((monotonicMs() - this.lastRenewedMs) / 1000).toFixed(1);
      const unanswered = this.renewalsInFlight > 0 ? `, ${this.renewalsInFlight} renewals unanswered` : '';
      this.fence(`no renewal succeeded for ${sinceS} s, the event loop was late by up to ${this.loopDelayMaxMs()} ms${unanswered}`);
    }
    if (this.stateValue === 'LEFT' || this.joining) return;
    if (this.stateValue !== 'HELD') {
      if (this.renewalsInFlight > 0) return;
      this.joining = true;
      try {
        await this.join();
      } catch (err) {
        this.log.warn({ replica: this.id, err: errorText(err) }, 'could not take the replica lease');
      } finally {
        this.joining = false;
      }
      return;
    }
    // A renewal is sent every period even while earlier ones wait for their answer: when Redis
    // answers late (a queue of other clients' commands ahead), the answers still come one period
    // apart, each extending the lease from when it ran. A bounded number: while Redis is away,
    // commands pile up in the client.
    if (this.renewalsInFlight >= RENEWALS_PER_LEASE) return;
    this.renewalsInFlight++;
    try {
      await this.renew();
    } catch (err) {
      this.log.warn({ replica: this.id, err: errorText(err) }, 'could not renew the replica lease');
    } finally {
      this.renewalsInFlight--;
    }
  }

  /**
   * When a renewal that was sent at `sentMs` and answered at `answeredMs` (monotonic clock) ran
   * in Redis, whose clock then read `redisNowMs`: by the Redis clock's offset from the local one,
   * learnt from the quickest recent round trip, and only when that was within the margin (its
   * error is half of it); else, as if it ran when it was sent. Never later than its answer, nor
   * earlier than it was sent. A renewal that waited seconds behind other clients' commands in
   * Redis so extends the lease from when Redis ran it, which is when the lease was renewed.
   */
  private renewalRanAt(sentMs: number, answeredMs: number, redisNowMs: number): number {
    const roundTripMs = answeredMs - sentMs;
    this.clockSamples.push({ roundTripMs, offsetMs: redisNowMs - (sentMs + answeredMs) / 2 });
    if (this.clockSamples.length > CLOCK_SAMPLES) this.clockSamples.shift();
    let best = this.clockSamples[0];
    for (const sample of this.clockSamples) if (sample.roundTripMs < best.roundTripMs) best = sample;
    if (best.roundTripMs > this.marginMs()) return sentMs;
    const ranAt = redisNowMs - best.offsetMs - best.roundTripMs / 2;
    return Math.max(sentMs, Math.min(answeredMs, ranAt));
  }

  /** The longest event loop delay since the last renewal, in ms. */
  private loopDelayMaxMs(): number {
    return Math.round(this.loopDelay.max / 1e6);
  }

  private async renew(): Promise<void> {
    const sentMs = monotonicMs();
    const id = this.idValue;
    const held = this.options.heldHeartbeatIntervalS?.() ?? 0;
    const reply = (await RENEW_SCRIPT.run(this.renewalRedis, [this.keys.replicaLeases(), this.keys.replicaHeartbeatIntervals()], [id, this.leaseMs, held])) as [
      number,
      number,
      string[],
      string[],
    ];
    if (this.stateValue !== 'HELD' || this.idValue !== id) return;
    const code = Number(reply[0]);
    if (code === -2) return this.fence('the lease had ended before it was renewed');
    const answeredMs = monotonicMs();
    const ranAt = this.renewalRanAt(sentMs, answeredMs, Number(reply[1]));
    // A renewal more than half a lease after the previous one is close to fencing: say why.
    if (ranAt - this.lastRenewedMs > this.leaseMs / 2) {
      this.log.warn(
        {
          replica: id,
          sincePreviousMs: Math.round(ranAt - this.lastRenewedMs),
          roundTripMs: Math.round(answeredMs - sentMs),
          eventLoopDelayMaxMs: this.loopDelayMaxMs(),
        },
        'replica lease renewed late',
      );
    }
    this.loopDelay.reset();
    this.lastRenewedMs = Math.max(this.lastRenewedMs, ranAt);
    this.validUntilMs = Math.max(this.validUntilMs, ranAt + this.leaseMs - this.marginMs());
    const nowMs = Number(reply[1]);
    const peers: ReplicaLeaseEnd[] = [];
    for (let i = 0; i + 1 < reply[2].length; i += 2) peers.push({ id: String(reply[2][i]), endsMs: Number(reply[2][i + 1]) });
    const noted = new Map<string, number>();
    for (let i = 0; i + 1 < reply[3].length; i += 2) noted.set(String(reply[3][i]), Number(reply[3][i + 1]));
    let longestS = 0;
    let unknown = false;
    for (const peer of peers) {
      if (peer.endsMs < nowMs) continue;
      const s = noted.get(peer.id);
      if (s === undefined || !Number.isFinite(s)) unknown = true;
      else longestS = Math.max(longestS, s);
    }
    this.peersIntervalS = unknown ? undefined : longestS;
    this.options.onPeers?.(peers, nowMs);
  }
}
