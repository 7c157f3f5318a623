import type Redis from 'ioredis';
import type { Hello } from '../../gen/baton/v1/agent_gateway_service';
import type { RedisKeys } from '../../lib/redis';

/** A node is discovered as online only if it was heard from within this many heartbeat intervals (agent protocol §2). */
export const STALE_AFTER_HEARTBEATS = 3;

/** One entry of the discovery index, as stored in `<prefix>:node:<identity>`. */
export interface IndexedNode {
  identity: string;
  /** The online flag: set on Hello, cleared when the stream ends. See `NodeIndex.isOnline` for liveness. */
  connected: boolean;
  /** Last time the node was heard from, ms since the epoch. */
  lastSeenMs: number;
  facts: Record<string, unknown>;
  classes: string[];
  agents: string[];
  version: string;
}

/** Outcome of `NodeIndex.touch`: refreshed, entry missing (Redis lost it), or owned by another session. */
export type TouchOutcome = 'TOUCHED' | 'MISSING' | 'OWNED_ELSEWHERE';

/**
 * Refreshes last_seen only while the entry still belongs to the calling session.
 * KEYS[1] node hash, KEYS[2] nodes zset; ARGV[1] session id, ARGV[2] now (ms), ARGV[3] identity.
 * Returns 1 when refreshed, 0 when the entry is gone, -1 when another session owns it.
 */
const TOUCH_SCRIPT = `
local owner = redis.call('HGET', KEYS[1], 'session')
if not owner then return 0 end
if owner ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], 'last_seen', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1`;

/**
 * Clears the online flag only while the entry still belongs to the calling session, so that
 * a stream ending late never marks offline a node that has reconnected meanwhile.
 * KEYS[1] node hash; ARGV[1] session id. Returns 1 when marked offline, 0 otherwise.
 */
const OFFLINE_SCRIPT = `
if redis.call('HGET', KEYS[1], 'session') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'online', '0')
return 1`;

function parseJson<T>(text: string | undefined, fallback: T): T {
  if (!text) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

/**
 * The Redis discovery index: one hash per node (identity, online flag, last_seen ms, facts,
 * classes and agents as JSON, version, and the id of the session that wrote it) plus a sorted
 * set of identities by last-seen time. Entries of disconnected nodes are kept.
 */
export class NodeIndex {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    /** Seconds between agent heartbeats; liveness is judged against STALE_AFTER_HEARTBEATS of them. */
    readonly heartbeatIntervalS: number,
  ) {}

  /** Writes a node from its Hello and marks it online, owned by `sessionId`. */
  async upsert(hello: Hello, sessionId: string, nowMs = Date.now()): Promise<void> {
    await this.redis
      .multi()
      .hset(this.keys.node(hello.identity), {
        identity: hello.identity,
        online: '1',
        last_seen: String(nowMs),
        facts: JSON.stringify(hello.facts ?? {}),
        classes: JSON.stringify(hello.classes),
        agents: JSON.stringify(hello.agents),
        version: hello.version,
        session: sessionId,
      })
      .zadd(this.keys.nodes(), nowMs, hello.identity)
      .exec();
  }

  /** Refreshes a node's last-seen time, if the entry still belongs to `sessionId`. */
  async touch(identity: string, sessionId: string, nowMs = Date.now()): Promise<TouchOutcome> {
    const r = await this.redis.eval(TOUCH_SCRIPT, 2, this.keys.node(identity), this.keys.nodes(), sessionId, String(nowMs), identity);
    return r === 1 ? 'TOUCHED' : r === 0 ? 'MISSING' : 'OWNED_ELSEWHERE';
  }

  /** Marks a node offline (kept, with its last-seen time) unless another session owns it now. */
  async markOffline(identity: string, sessionId: string): Promise<boolean> {
    const r = await this.redis.eval(OFFLINE_SCRIPT, 1, this.keys.node(identity), sessionId);
    return r === 1;
  }

  /**
   * Every node in the index, sorted by identity. Reads the whole index: fine for thousands of
   * nodes; the 100k-node path will replace this behind the same signature.
   */
  async list(): Promise<IndexedNode[]> {
    const identities = await this.redis.zrange(this.keys.nodes(), 0, -1);
    if (identities.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of identities) pipeline.hgetall(this.keys.node(id));
    const replies = (await pipeline.exec()) ?? [];
    const nodes: IndexedNode[] = [];
    for (const [err, raw] of replies) {
      const h = raw as Record<string, string> | null;
      if (err || !h || !h.identity) continue; // listed in the zset but the hash is gone
      nodes.push({
        identity: h.identity,
        connected: h.online === '1',
        lastSeenMs: Number(h.last_seen) || 0,
        facts: parseJson<Record<string, unknown>>(h.facts, {}),
        classes: parseJson<string[]>(h.classes, []),
        agents: parseJson<string[]>(h.agents, []),
        version: h.version ?? '',
      });
    }
    return nodes.sort((a, b) => (a.identity < b.identity ? -1 : a.identity > b.identity ? 1 : 0));
  }

  /** True when the node's flag is set and it was heard from within STALE_AFTER_HEARTBEATS intervals. */
  isOnline(node: IndexedNode, nowMs = Date.now()): boolean {
    return node.connected && nowMs - node.lastSeenMs <= STALE_AFTER_HEARTBEATS * this.heartbeatIntervalS * 1000;
  }
}
