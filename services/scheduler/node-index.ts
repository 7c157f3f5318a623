import type Redis from 'ioredis';
import type { Hello } from '../../gen/baton/v1/agent_gateway_service';
import type { RedisKeys } from '../../lib/redis';
import { LuaScript } from '../../lib/lua-script';
import { NodeNames } from './node-names';

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
 * KEYS[1] node hash, KEYS[2] nodes zset, KEYS[3] online zset; ARGV[1] session id, ARGV[2] now (ms), ARGV[3] identity.
 * Returns 1 when refreshed, 0 when the entry is gone, -1 when another session owns it.
 */
const TOUCH_SCRIPT = new LuaScript('touch', `
local owner = redis.call('HGET', KEYS[1], 'session')
if not owner then return 0 end
if owner ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], 'last_seen', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
if redis.call('HGET', KEYS[1], 'online') == '1' then redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3]) end
return 1`);

/**
 * Clears the online flag only while the entry still belongs to the calling session, so that
 * a stream ending late never marks offline a node that has reconnected meanwhile.
 * KEYS[1] node hash, KEYS[2] online zset, KEYS[3] online set, KEYS[4] node ids hash, KEYS[5]
 * online bitmap; ARGV[1] session id, ARGV[2] identity.
 * Returns 1 when marked offline, 0 otherwise.
 */
const OFFLINE_SCRIPT = new LuaScript('offline', `
if redis.call('HGET', KEYS[1], 'session') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'online', '0')
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SREM', KEYS[3], ARGV[2])
local nid = redis.call('HGET', KEYS[4], ARGV[2])
if nid then redis.call('SETBIT', KEYS[5], nid, 0) end
return 1`);

/**
 * A membership set (fact value, class, agent) that reaches this many members is turned into a
 * bitmap over node ids and is kept as one from then on (`<p>:bitmapped` lists those sets). Below
 * it the set of names is cheap to read (a few kB) and smaller than a bitmap, which takes one bit
 * per node id ever assigned (12.5 kB at 100,000 nodes), so a fact unique to each node (a serial
 * number) never gets one. Above it a bitmap is both what discovery combines (discovery-plan.ts)
 * and far smaller than the set: a fact value 68,000 nodes share is 8.5 kB instead of ~5 MB.
 */
export const BITMAP_MIN_MEMBERS = 256;

/**
 * Writes a node and replaces its inverted-index entries in one step, so that a reader never sees
 * a node under both its old and its new facts (issue 5 point 1). The entries a node is in are
 * kept in its hash (field `index`) so that the next write can remove exactly those; entries in
 * both the old and the new list are left alone. A node gets a dense id on its first write (an
 * RPUSH onto the id → identity list, so ids are never reused). A membership is a set of names
 * until it reaches BITMAP_MIN_MEMBERS members, then it is converted to a bitmap (the set is
 * deleted, `<p>:bitmapped` records it) and maintained with SETBIT; the flag, not the size, says
 * which form a membership has, so writers with different thresholds never disagree.
 * KEYS[1] node hash, KEYS[2] nodes zset, KEYS[3] online zset, KEYS[4] identities zset,
 * KEYS[5] all-nodes set, KEYS[6] online set, KEYS[7] node ids hash, KEYS[8] node names list,
 * KEYS[9] all-nodes bitmap, KEYS[10] online bitmap, KEYS[11] bitmapped-sets hash.
 * ARGV[1] identity, ARGV[2] now (ms), ARGV[3] session id, ARGV[4] facts JSON, ARGV[5] classes JSON,
 * ARGV[6] agents JSON, ARGV[7] version, ARGV[8] the node's entries as JSON
 * `{"sets": [key...], "zsets": [[key, score-as-text, value set key]...]}`, ARGV[9] name registrations as JSON
 * `[[set key, member]...]` (class and agent names, never removed), ARGV[10] the key prefix
 * (a set's bitmap is `<p>:bits:` + the set key after `<p>:`; the distinct values of the numeric
 * fact `<p>:factnum:<path>` are in `<p>:factvals:<path>`, as RedisKeys builds them: a value's
 * set key is added with the node and removed once no node has the value), ARGV[11] BITMAP_MIN_MEMBERS.
 * Returns the number of entries written.
 */
const UPSERT_SCRIPT = new LuaScript('upsert', `
local name = ARGV[1]
local rest = #ARGV[10] + 2
local function bits(k) return ARGV[10] .. ':bits:' .. string.sub(k, rest) end
local function distinct(k) return ARGV[10] .. ':factvals:' .. string.sub(k, rest + 8) end
local minMembers = tonumber(ARGV[11])
local nid = redis.call('HGET', KEYS[7], name)
if nid then
  nid = tonumber(nid)
else
  nid = redis.call('RPUSH', KEYS[8], name) - 1
  redis.call('HSET', KEYS[7], name, nid)
end
local n = cjson.decode(ARGV[8])
local o = {sets = {}, zsets = {}}
local old = redis.call('HGET', KEYS[1], 'index')
if old then o = cjson.decode(old) end
local now, was = {}, {}
for _, k in ipairs(n.sets) do now[k] = true end
for _, k in ipairs(o.sets) do was[k] = true end
local gone, added = {}, {}
for _, k in ipairs(o.sets) do if not now[k] then gone[#gone + 1] = k end end
for _, k in ipairs(n.sets) do if not was[k] then added[#added + 1] = k end end
-- One HMGET says which of the touched memberships are bitmaps.
local flagged = {}
local touched = {}
for _, k in ipairs(gone) do touched[#touched + 1] = k end
for _, k in ipairs(added) do touched[#touched + 1] = k end
if #touched > 0 then
  local f = redis.call('HMGET', KEYS[11], unpack(touched))
  for i, k in ipairs(touched) do flagged[k] = f[i] and true or false end
end
local function empty(k)
  if flagged[k] then return redis.call('BITCOUNT', bits(k)) == 0 end
  return redis.call('SCARD', k) == 0
end
for _, k in ipairs(gone) do
  if flagged[k] then redis.call('SETBIT', bits(k), nid, 0) else redis.call('SREM', k, name) end
end
for _, k in ipairs(added) do
  if flagged[k] then
    redis.call('SETBIT', bits(k), nid, 1)
  else
    redis.call('SADD', k, name)
    if redis.call('SCARD', k) >= minMembers then
      local b = bits(k)
      local members = redis.call('SMEMBERS', k)
      for i = 1, #members, 1000 do
        local ids = redis.call('HMGET', KEYS[7], unpack(members, i, math.min(i + 999, #members)))
        for _, m in ipairs(ids) do
          if m then redis.call('SETBIT', b, m, 1) end
        end
      end
      redis.call('DEL', k)
      redis.call('HSET', KEYS[11], k, 1)
      flagged[k] = true
    end
  end
end
local nowz, keepz = {}, {}
for _, e in ipairs(n.zsets) do nowz[e[1]] = e[2] .. ' ' .. (e[3] or '') end
for _, e in ipairs(o.zsets) do
  if nowz[e[1]] == e[2] .. ' ' .. (e[3] or '') then
    keepz[e[1]] = true
  else
    redis.call('ZREM', e[1], name)
    if e[3] and empty(e[3]) then redis.call('ZREM', distinct(e[1]), e[3]) end
  end
end
for _, e in ipairs(n.zsets) do
  if not keepz[e[1]] then
    redis.call('ZADD', e[1], e[2], name)
    redis.call('ZADD', distinct(e[1]), e[2], e[3])
  end
end
if #added > 0 then
  for _, e in ipairs(cjson.decode(ARGV[9])) do redis.call('SADD', e[1], e[2]) end
end
redis.call('HSET', KEYS[1], 'identity', name, 'online', '1', 'last_seen', ARGV[2], 'facts', ARGV[4],
  'classes', ARGV[5], 'agents', ARGV[6], 'version', ARGV[7], 'session', ARGV[3], 'index', ARGV[8])
redis.call('ZADD', KEYS[2], ARGV[2], name)
redis.call('ZADD', KEYS[3], ARGV[2], name)
redis.call('ZADD', KEYS[4], 0, name)
redis.call('SADD', KEYS[5], name)
redis.call('SADD', KEYS[6], name)
redis.call('SETBIT', KEYS[9], nid, 1)
redis.call('SETBIT', KEYS[10], nid, 1)
return #n.sets + #n.zsets`);

const NUMBER = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;

/** A fact value as a number, when it is one or is text that reads as one (finite only). */
export function factNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string' && NUMBER.test(v)) {
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/** A scalar fact value as the text the index keys it by: lowercased, since equality is case-insensitive. */
export function factIndexText(v: string | number | boolean): string {
  return String(v).toLowerCase();
}

/**
 * Every scalar fact under its dotted path (`os.family`, `disks.0.size`), the paths
 * `factAt` (lib/filter-language) resolves. Nulls, empty objects and arrays have no entry.
 */
export function flattenFacts(facts: Record<string, unknown>): Array<[string, string | number | boolean]> {
  const out: Array<[string, string | number | boolean]> = [];
  const walk = (value: unknown, path: string): void => {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      out.push([path, value]);
    } else if (typeof value === 'object' && value !== null) {
      for (const [k, v] of Object.entries(value)) walk(v, path === '' ? k : `${path}.${k}`);
    }
  };
  walk(facts, '');
  return out;
}

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
    /** Members from which a membership set also has a bitmap; default BITMAP_MIN_MEMBERS (tests lower it to reach both forms with a few nodes). */
    readonly bitmapMinMembers = BITMAP_MIN_MEMBERS,
  ) {
    this.names = new NodeNames(redis, keys.nodeNames());
  }

  /** The id → identity copy discovery decodes bitmaps with. */
  readonly names: NodeNames;

  /**
   * Writes a node from its Hello (or a FactsUpdate folded into it) and marks it online, owned by
   * `sessionId`; its previous fact, class and agent entries are replaced atomically.
   */
  async upsert(hello: Hello, sessionId: string, nowMs = Date.now()): Promise<void> {
    const facts = hello.facts ?? {};
    const sets = new Set<string>();
    const zsets: Array<[string, string, string]> = [];
    const seenNumeric = new Set<string>();
    for (const [path, value] of flattenFacts(facts)) {
      sets.add(this.keys.factValue(path, factIndexText(value)));
      const n = factNumber(value);
      if (n !== undefined && !seenNumeric.has(path)) {
        seenNumeric.add(path);
        zsets.push([this.keys.factNumber(path), String(n), this.keys.factValue(path, factIndexText(value))]);
      }
    }
    const names: Array<[string, string]> = [];
    for (const c of new Set(hello.classes.map((c) => c.toLowerCase()))) {
      sets.add(this.keys.nodeClass(c));
      names.push([this.keys.classNames(), c]);
    }
    for (const a of new Set(hello.agents)) {
      sets.add(this.keys.nodeAgent(a));
      names.push([this.keys.agentNames(), a]);
    }
    // By SHA (LuaScript): 100,000 Hellos would otherwise each carry the 1 kB script body.
    await UPSERT_SCRIPT.run(
      this.redis,
      [
        this.keys.node(hello.identity),
        this.keys.nodes(),
        this.keys.online(),
        this.keys.identities(),
        this.keys.allNodes(),
        this.keys.onlineSet(),
        this.keys.nodeIds(),
        this.keys.nodeNames(),
        this.keys.bitmapOf(this.keys.allNodes()),
        this.keys.bitmapOf(this.keys.onlineSet()),
        this.keys.bitmappedSets(),
      ],
      [
      hello.identity,
      String(nowMs),
      sessionId,
      JSON.stringify(facts),
      JSON.stringify(hello.classes),
      JSON.stringify(hello.agents),
      hello.version,
      JSON.stringify({ sets: [...sets], zsets }),
      JSON.stringify(names),
      this.keys.prefix,
      this.bitmapMinMembers,
      ],
    );
  }

  /** Refreshes a node's last-seen time, if the entry still belongs to `sessionId`. */
  async touch(identity: string, sessionId: string, nowMs = Date.now()): Promise<TouchOutcome> {
    const r = await TOUCH_SCRIPT.run(this.redis, [this.keys.node(identity), this.keys.nodes(), this.keys.online()], [sessionId, String(nowMs), identity]);
    return r === 1 ? 'TOUCHED' : r === 0 ? 'MISSING' : 'OWNED_ELSEWHERE';
  }

  /** Marks a node offline (kept, with its last-seen time) unless another session owns it now. */
  async markOffline(identity: string, sessionId: string): Promise<boolean> {
    const r = await OFFLINE_SCRIPT.run(this.redis, [this.keys.node(identity), this.keys.online(), this.keys.onlineSet(), this.keys.nodeIds(), this.keys.bitmapOf(this.keys.onlineSet())], [sessionId, identity]);
    return r === 1;
  }

  /** Every node in the index, sorted by identity. Reads the whole index (tests and small fleets). */
  async list(): Promise<IndexedNode[]> {
    return this.load(await this.redis.zrange(this.keys.nodes(), 0, -1));
  }

  /** The given nodes' entries, sorted by identity; identities without an entry are left out. */
  async load(identities: string[]): Promise<IndexedNode[]> {
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

  /**
   * Every known identity in lexicographic order, from the scheduler's copy of the id list
   * (node-names.ts): one LLEN when no node was added since the last call.
   */
  async identities(): Promise<string[]> {
    await this.names.refresh();
    return this.names.sorted();
  }

  /** Last-seen ms from which a connected node counts as online (agent protocol §2: 3 missed heartbeats). */
  freshSinceMs(nowMs = Date.now()): number {
    return nowMs - STALE_AFTER_HEARTBEATS * this.heartbeatIntervalS * 1000;
  }

  /** The Redis client and keys, for the discovery planner that queries the index. */
  get store(): { redis: Redis; keys: RedisKeys } {
    return { redis: this.redis, keys: this.keys };
  }

  /** True when the node's flag is set and it was heard from within STALE_AFTER_HEARTBEATS intervals. */
  isOnline(node: IndexedNode, nowMs = Date.now()): boolean {
    return node.connected && nowMs - node.lastSeenMs <= STALE_AFTER_HEARTBEATS * this.heartbeatIntervalS * 1000;
  }
}
