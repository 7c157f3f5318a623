import type Redis from 'ioredis';
import type { Hello } from '../../gen/baton/v1/agent_gateway_service';
import type { RedisKeys } from '../../lib/redis';
import { LuaScript } from '../../lib/lua-script';
import { indexText, readNumber, scalarFacts } from '../../lib/filter-language';
import { NodeNames } from './node-names';

/** A node is discovered as online only if it was heard from within this many heartbeat intervals (docs/agent-protocol.md §2). */
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
  /** The scheduler replica holding the node's agent stream; '' when none (offline, or written without replicas). */
  owner: string;
}

/** What the index needs of the scheduler replica it runs in (replica-lease.ts). */
export interface IndexReplica {
  /** This replica's id: the nodes it writes are its own. */
  readonly id: string;
  /** False while the replica has no lease: it writes no node (its agents are to go elsewhere). */
  readonly held: boolean;
  /** The replicas whose lease has ended: nodes they own are not online. */
  expired(): Promise<string[]>;
}

/**
 * Clears the online flag only while the entry still belongs to the calling session, so that
 * a stream ending late never marks offline a node that has reconnected meanwhile; the node
 * then belongs to no replica. The end of the stream is the last time the node was heard, so
 * last_seen becomes it: how long an agent has been gone counts from there, not from its last
 * heartbeat (up to an interval earlier).
 * KEYS[1] node hash, KEYS[2] online zset, KEYS[3] node ids hash, KEYS[4] online bitmap,
 * KEYS[5] nodes zset, KEYS[6] (optional) the owner bitmap of the calling replica;
 * ARGV[1] session id, ARGV[2] identity, ARGV[3] now, ms since the epoch.
 * Returns 1 when marked offline, 0 otherwise.
 */
const OFFLINE_SCRIPT = new LuaScript('offline', `
if redis.call('HGET', KEYS[1], 'session') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'online', '0', 'last_seen', ARGV[3])
redis.call('HDEL', KEYS[1], 'owner')
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[5], 'XX', ARGV[3], ARGV[2])
local nid = redis.call('HGET', KEYS[3], ARGV[2])
if nid then
  redis.call('SETBIT', KEYS[4], nid, 0)
  if KEYS[6] then redis.call('SETBIT', KEYS[6], nid, 0) end
end
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
 * Hellos written by one UPSERT_SCRIPT call at most. A whole fleet registers at once after a
 * scheduler restart: written one by one, most of Redis's time went on the dozens of commands the
 * script issued for each node (one SETBIT per fact value, class and agent). Written together, a
 * batch sets the bits of all its nodes in one BITFIELD per membership and their last-seen scores
 * in one ZADD. The batch size bounds how long one call holds Redis, which is what a discovery
 * query waits behind during a registration storm (bench/discovery-bench.ts measures registration
 * and queries); with fewer Hellos waiting, batches are smaller (one Hello alone is written at
 * once).
 */
export const UPSERT_BATCH_MAX = 200;

/**
 * Script arguments one batch carries at most, besides its first Hello: a node of the benchmark
 * fleet (20 facts, 10 classes) takes ~80, so full batches fit, while nodes with thousands of
 * facts (up to MAX_NODE_FACT_VALUES each, agent-stream-limits.ts) go in smaller batches instead
 * of 200 of them holding Redis in one call.
 */
export const UPSERT_BATCH_MAX_ARGS = 20_000;

/** Batches in flight at once: one being run by Redis while the next is sent. */
const UPSERT_BATCHES_IN_FLIGHT = 2;

/**
 * Writes nodes and replaces their inverted-index entries in one step, so that a reader never
 * sees a node under both its old and its new facts. The entries a node is in
 * are kept in its hash (field `index`, JSON) so that the next write can remove exactly those;
 * entries in both the old and the new list are left alone, and a Hello whose entries are those
 * already stored (a reconnect with unchanged facts) touches none. A node gets a dense id on its
 * first write (an RPUSH onto the id → identity list, so ids are never reused). A membership is a
 * set of names until it reaches BITMAP_MIN_MEMBERS members, then it is converted to a bitmap (the
 * set is deleted, `<p>:bitmapped` records it) and maintained with BITFIELD; the flag, not the
 * size, says which form a membership has, so writers with different thresholds never disagree.
 * The nodes of one call are distinct: their changes to a membership commute and are applied
 * together (one SADD, SREM or BITFIELD per membership), and a numeric value leaves the fact's
 * distinct values only if no node has it once the whole batch is applied. A class or agent name
 * is added to its names set by the write that creates its membership set. A stored index that
 * is not valid JSON counts as no entries (the node is then indexed anew rather than failing the
 * batch of nodes written with it).
 *
 * With a replica id, the nodes become that replica's (`owner` in the node hash, its bit in the
 * replica's owner bitmap), and leave the owner bitmap of the replica they had: the move is part of
 * the same write. A node whose previous owner is not among the replicas passed makes the script
 * answer `{'UNKNOWN_OWNER', id}` before writing anything, for the caller to pass that one too.
 *
 * KEYS[1] nodes zset, KEYS[2] online zset, KEYS[3] node ids hash, KEYS[4] node names list,
 * KEYS[5] all-nodes bitmap, KEYS[6] online bitmap, KEYS[7] bitmapped-sets hash, KEYS[7 + i] the
 * hash of the i-th node (i = 1..B), then with a replica id: KEYS[8 + B] its owner bitmap and
 * KEYS[8 + B + j] the owner bitmap of the j-th other replica.
 * ARGV[1] the key prefix (a set's bitmap is `<p>:bits:` + the set key after `<p>:`; the distinct
 * values of the numeric fact `<p>:factnum:<path>` are in `<p>:factvals:<path>`, as RedisKeys
 * builds them: a value's set key is added with the node and removed once no node has the value),
 * ARGV[2] BITMAP_MIN_MEMBERS, ARGV[3] B the number of nodes, then B records of: identity, now
 * (ms), session id, facts JSON, classes JSON, agents JSON, version, the node's entries as stored,
 * JSON `{"sets": [key...], "zsets": [[key, score-as-text, value set key]...]}`, then the same
 * entries as arguments: P, N and Z, then P fact value set keys, N times (class or agent set key,
 * its names set key, the class or agent name), Z times (zset key, score, value set key); after
 * the records: the writing replica's id ('' for none), K, and the ids of K other replicas.
 * Returns 1, or `{'UNKNOWN_OWNER', id}`.
 */
const UPSERT_SCRIPT = new LuaScript('upsert', `
local prefix = ARGV[1]
local rest = #prefix + 2
local function bits(k) return prefix .. ':bits:' .. string.sub(k, rest) end
local function distinct(k) return prefix .. ':factvals:' .. string.sub(k, rest + 8) end
local minMembers = tonumber(ARGV[2])
-- unpack() pushes every value on Lua's bounded stack: long argument lists go in chunks.
local CHUNK = 1000
local function each(list, step, fn)
  for i = 1, #list, step do fn(unpack(list, i, math.min(i + step - 1, #list))) end
end
-- One BITFIELD per bitmap; ids are kept as text, as Redis takes them.
local function setBits(key, ids, value)
  local args, c = {}, 0
  for i = 1, #ids do
    args[c + 1] = 'SET'; args[c + 2] = 'u1'; args[c + 3] = ids[i]; args[c + 4] = value
    c = c + 4
  end
  each(args, CHUNK, function(...) redis.call('BITFIELD', key, ...) end)
end

local nodes = {}
local p = 4
for i = 1, tonumber(ARGV[3]) do
  local P, N, Z = tonumber(ARGV[p + 8]), tonumber(ARGV[p + 9]), tonumber(ARGV[p + 10])
  nodes[i] = {at = p, P = P, N = N, Z = Z, name = ARGV[p]}
  p = p + 11 + P + 3 * N + 3 * Z
end

-- Owners: each node's previous one must be among the replicas passed, checked before any write.
local B, me, ownerKey = tonumber(ARGV[3]), ARGV[p], {}
if me ~= '' then
  ownerKey[me] = KEYS[8 + B]
  for j = 1, tonumber(ARGV[p + 1]) do ownerKey[ARGV[p + 1 + j]] = KEYS[8 + B + j] end
  for i, n in ipairs(nodes) do
    local old = redis.call('HGET', KEYS[7 + i], 'owner')
    if old and not ownerKey[old] then return {'UNKNOWN_OWNER', old} end
    n.owner = old
  end
end

-- Ids: existing ones in one HMGET, new ones appended in one RPUSH.
local names = {}
for i, n in ipairs(nodes) do names[i] = n.name end
local ids = redis.call('HMGET', KEYS[3], unpack(names))
local fresh = {}
for i, n in ipairs(nodes) do
  if ids[i] then n.nid = ids[i] else fresh[#fresh + 1] = n end
end
if #fresh > 0 then
  local list, idOf = {}, {}
  for j, n in ipairs(fresh) do list[j] = n.name end
  local len = redis.call('RPUSH', KEYS[4], unpack(list))
  for j, n in ipairs(fresh) do
    n.nid = tostring(len - #fresh + j - 1)
    idOf[#idOf + 1] = n.name
    idOf[#idOf + 1] = n.nid
  end
  redis.call('HSET', KEYS[3], unpack(idOf))
end

-- Each node's changes, gathered per membership and per numeric fact.
local setOps, setOrder, zOps, zOrder = {}, {}, {}, {}
-- The changes to key k in ops (lists named by fields), created on first use; order keeps the keys.
local function opOf(ops, order, fields, k)
  local op = ops[k]
  if not op then
    op = {}
    for _, f in ipairs(fields) do op[f] = {} end
    ops[k] = op
    order[#order + 1] = k
  end
  return op
end
local SET_FIELDS, Z_FIELDS = {'add', 'addIds', 'rem', 'remIds'}, {'add', 'rem', 'values', 'gone'}
local function setOp(k) return opOf(setOps, setOrder, SET_FIELDS, k) end
local function zOp(k) return opOf(zOps, zOrder, Z_FIELDS, k) end
local function addTo(k, name, nid)
  local op = setOp(k)
  local c = #op.add + 1
  op.add[c] = name
  op.addIds[c] = nid
  return op
end
for i, n in ipairs(nodes) do
  local at, P, N, Z, name, nid = n.at, n.P, n.N, n.Z, n.name, n.nid
  local named, z0 = at + 11 + P, at + 11 + P + 3 * N
  local old = redis.call('HGET', KEYS[7 + i], 'index')
  if old ~= ARGV[at + 7] then
    -- The stored entries; none for a node indexed for the first time, which then skips every
    -- comparison (most of a registration storm's nodes).
    local o
    if old then
      local ok, decoded = pcall(cjson.decode, old)
      o = ok and type(decoded) == 'table' and decoded or {}
    end
    local was, now = {}, o and {}
    for _, k in ipairs(o and o.sets or {}) do was[k] = true end
    for q = at + 11, named - 1 do
      if now then now[ARGV[q]] = true end
      if not was[ARGV[q]] then addTo(ARGV[q], name, nid) end
    end
    for q = named, z0 - 1, 3 do
      if now then now[ARGV[q]] = true end
      if not was[ARGV[q]] then
        local op = addTo(ARGV[q], name, nid)
        op.namesKey, op.label = ARGV[q + 1], ARGV[q + 2]
      end
    end
    for k in pairs(was) do
      if not now[k] then
        local op = setOp(k)
        op.rem[#op.rem + 1] = name
        op.remIds[#op.remIds + 1] = nid
      end
    end
    local keepz = {}
    if o and o.zsets then
      local nowz = {}
      for q = z0, z0 + 3 * Z - 1, 3 do nowz[ARGV[q]] = ARGV[q + 1] .. ' ' .. ARGV[q + 2] end
      for _, e in ipairs(o.zsets) do
        if nowz[e[1]] == e[2] .. ' ' .. (e[3] or '') then
          keepz[e[1]] = true
        else
          local op = zOp(e[1])
          op.rem[#op.rem + 1] = name
          if e[3] then op.gone[#op.gone + 1] = e[3] end
        end
      end
    end
    for q = z0, z0 + 3 * Z - 1, 3 do
      if not keepz[ARGV[q]] then
        local op = zOp(ARGV[q])
        local c = #op.add
        op.add[c + 1] = ARGV[q + 1]; op.add[c + 2] = name
        op.values[c + 1] = ARGV[q + 1]; op.values[c + 2] = ARGV[q + 2]
      end
    end
  end
end

-- Memberships: which are bitmaps (one HMGET), then one change per membership.
local flagged = {}
for i = 1, #setOrder, CHUNK do
  local f = redis.call('HMGET', KEYS[7], unpack(setOrder, i, math.min(i + CHUNK - 1, #setOrder)))
  for j = 1, #f do flagged[setOrder[i + j - 1]] = f[j] and true or false end
end
local function toBitmap(k)
  local b = bits(k)
  each(redis.call('SMEMBERS', k), CHUNK, function(...)
    local known = {}
    for _, id in ipairs(redis.call('HMGET', KEYS[3], ...)) do
      if id then known[#known + 1] = id end
    end
    setBits(b, known, 1)
  end)
  redis.call('DEL', k)
  redis.call('HSET', KEYS[7], k, 1)
  flagged[k] = true
end
for _, k in ipairs(setOrder) do
  local op = setOps[k]
  if flagged[k] then
    local b = bits(k)
    if #op.remIds > 0 then setBits(b, op.remIds, 0) end
    if #op.addIds > 0 then setBits(b, op.addIds, 1) end
  else
    each(op.rem, CHUNK, function(...) redis.call('SREM', k, ...) end)
    if #op.add > 0 then
      local new = 0
      each(op.add, CHUNK, function(...) new = new + redis.call('SADD', k, ...) end)
      local size = redis.call('SCARD', k)
      if op.namesKey and size == new then redis.call('SADD', op.namesKey, op.label) end
      if size >= minMembers then toBitmap(k) end
    end
  end
end

-- Numeric facts: members and scores, then the distinct values no node has any more.
local function empty(k)
  if flagged[k] == nil then flagged[k] = redis.call('HEXISTS', KEYS[7], k) == 1 end
  if flagged[k] then return redis.call('BITCOUNT', bits(k)) == 0 end
  return redis.call('SCARD', k) == 0
end
for _, k in ipairs(zOrder) do
  local op, d, checked = zOps[k], distinct(k), {}
  each(op.rem, CHUNK, function(...) redis.call('ZREM', k, ...) end)
  for _, v in ipairs(op.gone) do
    if not checked[v] then
      checked[v] = true
      if empty(v) then redis.call('ZREM', d, v) end
    end
  end
  each(op.add, CHUNK, function(...) redis.call('ZADD', k, ...) end)
  each(op.values, CHUNK, function(...) redis.call('ZADD', d, ...) end)
end

-- The nodes themselves: online, last seen now.
local seen, nids, moved, movedOrder = {}, {}, {}, {}
for i, n in ipairs(nodes) do
  local at = n.at
  redis.call('HSET', KEYS[7 + i], 'identity', n.name, 'online', '1', 'last_seen', ARGV[at + 1], 'facts', ARGV[at + 3],
    'classes', ARGV[at + 4], 'agents', ARGV[at + 5], 'version', ARGV[at + 6], 'session', ARGV[at + 2], 'index', ARGV[at + 7])
  if me ~= '' then
    redis.call('HSET', KEYS[7 + i], 'owner', me)
    if n.owner and n.owner ~= me then
      local k = ownerKey[n.owner]
      if not moved[k] then moved[k] = {}; movedOrder[#movedOrder + 1] = k end
      moved[k][#moved[k] + 1] = n.nid
    end
  end
  seen[#seen + 1] = ARGV[at + 1]; seen[#seen + 1] = n.name
  nids[#nids + 1] = n.nid
end
each(seen, CHUNK, function(...) redis.call('ZADD', KEYS[1], ...) end)
each(seen, CHUNK, function(...) redis.call('ZADD', KEYS[2], ...) end)
setBits(KEYS[5], nids, 1)
setBits(KEYS[6], nids, 1)
if me ~= '' then
  -- A reaped replica's bitmap is gone: it is not created again just to hold zeros.
  for _, k in ipairs(movedOrder) do
    if redis.call('EXISTS', k) == 1 then setBits(k, moved[k], 0) end
  end
  setBits(KEYS[8 + B], nids, 1)
end
return 1`);

function parseJson<T>(text: string | undefined, fallback: T): T {
  if (!text) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

/** An upsert waiting for its batch: the node's UPSERT_SCRIPT record and who waits for it. */
interface QueuedUpsert {
  identity: string;
  args: string[];
  /** Written in a batch of its own (after its batch failed). */
  alone?: boolean;
  resolve: () => void;
  reject: (err: unknown) => void;
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

  /** The replica this index writes for; undefined: nodes are written without an owner. */
  private replica: IndexReplica | undefined;
  /** Other replicas a node may belong to (their owner bitmaps go with every upsert). */
  private readonly peers = new Set<string>();

  /** Makes every later write record its nodes as owned by `replica`. */
  setReplica(replica: IndexReplica): void {
    this.replica = replica;
  }

  /** The replicas known to exist besides this one (refreshed with each lease renewal); others are learnt as upserts meet them. */
  setPeers(ids: Iterable<string>): void {
    this.peers.clear();
    for (const id of ids) if (id !== this.replica?.id) this.peers.add(id);
  }

  /** The replicas whose lease has ended (none without replicas). */
  deadReplicas(): Promise<string[]> {
    return this.replica ? this.replica.expired() : Promise.resolve([]);
  }

  /** Upserts waiting for a batch, in the order they were asked for. */
  private queued: QueuedUpsert[] = [];
  private batchesInFlight = 0;
  /** Nodes in the batches being written. */
  private readonly writing = new Set<string>();
  /** Per node with an upsert queued or being written, the last one's end (failed or not). */
  private readonly lastUpserts = new Map<string, Promise<void>>();

  /**
   * Writes a node from its Hello (or a FactsUpdate folded into it) and marks it online, owned by
   * `sessionId`; its previous fact, class and agent entries are replaced atomically. Upserts
   * asked for while earlier ones are being written go to Redis together (UPSERT_BATCH_MAX per
   * script call); those of one node are written in the order they were asked for.
   */
  upsert(hello: Hello, sessionId: string, nowMs = Date.now()): Promise<void> {
    if (this.replica && !this.replica.held) return Promise.reject(new Error('this scheduler replica holds no lease in Redis'));
    const facts = hello.facts ?? {};
    const sets = new Set<string>();
    const zsets: Array<[string, string, string]> = [];
    const seenNumeric = new Set<string>();
    // The values discovery's in-memory path resolves (lib/filter-language fact-values.ts).
    for (const [path, value] of scalarFacts(facts)) {
      sets.add(this.keys.factValue(path, indexText(value)));
      const n = readNumber(value);
      if (n !== undefined && !seenNumeric.has(path)) {
        seenNumeric.add(path);
        zsets.push([this.keys.factNumber(path), String(n), this.keys.factValue(path, indexText(value))]);
      }
    }
    const plain = [...sets];
    const named: string[] = [];
    for (const c of new Set(hello.classes.map((c) => c.toLowerCase()))) {
      sets.add(this.keys.nodeClass(c));
      named.push(this.keys.nodeClass(c), this.keys.classNames(), c);
    }
    for (const a of new Set(hello.agents)) {
      sets.add(this.keys.nodeAgent(a));
      named.push(this.keys.nodeAgent(a), this.keys.agentNames(), a);
    }
    const args = [
      hello.identity,
      String(nowMs),
      sessionId,
      JSON.stringify(facts),
      JSON.stringify(hello.classes),
      JSON.stringify(hello.agents),
      hello.version,
      JSON.stringify({ sets: [...sets], zsets }),
      String(plain.length),
      String(named.length / 3),
      String(zsets.length),
      ...plain,
      ...named,
      ...zsets.flat(),
    ];
    const written = new Promise<void>((resolve, reject) => {
      this.queued.push({ identity: hello.identity, args, resolve, reject });
      this.writeQueued();
    });
    const settled = written.then(
      () => undefined,
      () => undefined,
    );
    this.lastUpserts.set(hello.identity, settled);
    void settled.then(() => {
      if (this.lastUpserts.get(hello.identity) === settled) this.lastUpserts.delete(hello.identity);
    });
    return written;
  }

  /** Sends queued upserts while fewer than UPSERT_BATCHES_IN_FLIGHT batches are being written. */
  private writeQueued(): void {
    while (this.batchesInFlight < UPSERT_BATCHES_IN_FLIGHT) {
      const batch = this.takeBatch();
      if (batch.length === 0) return;
      this.batchesInFlight++;
      for (const u of batch) this.writing.add(u.identity);
      const keys = [
        this.keys.nodes(),
        this.keys.online(),
        this.keys.nodeIds(),
        this.keys.nodeNames(),
        this.keys.allNodesBitmap(),
        this.keys.onlineBitmap(),
        this.keys.bitmappedSets(),
        ...batch.map((u) => this.keys.node(u.identity)),
      ];
      const args: Array<string | number> = [this.keys.prefix, this.bitmapMinMembers, batch.length];
      for (const u of batch) for (const a of u.args) args.push(a);
      const peers = [...this.peers];
      if (this.replica) {
        keys.push(this.keys.ownerBitmap(this.replica.id), ...peers.map((id) => this.keys.ownerBitmap(id)));
        args.push(this.replica.id, peers.length, ...peers);
      } else {
        args.push('', 0);
      }
      // By SHA (LuaScript): the 7 kB script body is sent once, not with every batch.
      UPSERT_SCRIPT.run(this.redis, keys, args)
        .then(
          (reply) => {
            if (Array.isArray(reply) && reply[0] === 'UNKNOWN_OWNER') {
              // A node of a replica this one had not heard of (it joined since the last
              // renewal): written again, with that replica's bitmap too.
              this.peers.add(String(reply[1]));
              this.queued.unshift(...batch);
              return;
            }
            batch.forEach((u) => u.resolve());
          },
          (err: unknown) => {
            if (batch.length === 1) batch[0].reject(err);
            // One node's data can fail the whole script (a key of the wrong type): each upsert
            // is tried again alone, before any later one of its node, so only that one fails.
            // The node hash (and its stored entries) is written last, so a retry re-applies
            // whatever part of the batch was written.
            else this.queued.unshift(...batch.map((u) => ({ ...u, alone: true })));
          },
        )
        .finally(() => {
          this.batchesInFlight--;
          for (const u of batch) this.writing.delete(u.identity);
          this.writeQueued();
        });
    }
  }

  /**
   * The next batch: queued upserts in order, at most UPSERT_BATCH_MAX and UPSERT_BATCH_MAX_ARGS
   * (a first upsert always goes, whatever its size), each node at most once
   * and none of a node in a batch being written, so that the upserts of one node are written
   * in the order they were asked for; an upsert marked `alone` goes by itself.
   */
  private takeBatch(): QueuedUpsert[] {
    const batch: QueuedUpsert[] = [];
    const left: QueuedUpsert[] = [];
    const blocked = new Set(this.writing);
    let args = 0;
    for (const u of this.queued) {
      const fits =
        !blocked.has(u.identity) &&
        (batch.length === 0 || (batch.length < UPSERT_BATCH_MAX && args + u.args.length <= UPSERT_BATCH_MAX_ARGS && !u.alone && !batch[0].alone));
      if (fits) {
        batch.push(u);
        args += u.args.length;
      } else {
        left.push(u);
      }
      blocked.add(u.identity); // a later upsert of this node must not overtake this one
    }
    this.queued = left;
    return batch;
  }

  /** Marks a node offline (kept, last seen now) unless another session owns it now. */
  async markOffline(identity: string, sessionId: string, nowMs = Date.now()): Promise<boolean> {
    // After the node's upserts asked for before: a stream that ends while its Hello waits for a
    // batch must leave the node offline, not see its Hello written after this.
    await this.lastUpserts.get(identity);
    const keys = [this.keys.node(identity), this.keys.online(), this.keys.nodeIds(), this.keys.onlineBitmap(), this.keys.nodes()];
    if (this.replica) keys.push(this.keys.ownerBitmap(this.replica.id));
    const r = await OFFLINE_SCRIPT.run(this.redis, keys, [sessionId, identity, String(nowMs)]);
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
        owner: h.owner ?? '',
      });
    }
    return nodes.sort((a, b) => (a.identity < b.identity ? -1 : a.identity > b.identity ? 1 : 0));
  }

  /**
   * Whether each given node's agent is connected and when it was last heard from (one HMGET
   * per node, pipelined); nodes without an entry are left out.
   */
  async presence(identities: string[]): Promise<Map<string, { connected: boolean; lastSeenMs: number }>> {
    const out = new Map<string, { connected: boolean; lastSeenMs: number }>();
    if (identities.length === 0) return out;
    const pipeline = this.redis.pipeline();
    for (const id of identities) pipeline.hmget(this.keys.node(id), 'online', 'last_seen', 'owner');
    const [replies, dead] = await Promise.all([pipeline.exec().then((r) => r ?? []), this.deadReplicas().then((ids) => new Set(ids))]);
    replies.forEach(([err, raw], i) => {
      const [online, lastSeen, owner] = (raw as Array<string | null> | null) ?? [];
      // A node held by a replica whose lease ended is not connected anywhere any more.
      const connected = online === '1' && !(owner && dead.has(owner));
      if (!err && lastSeen != null) out.set(identities[i], { connected, lastSeenMs: Number(lastSeen) || 0 });
    });
    return out;
  }

  /**
   * Every known identity in lexicographic order, from the scheduler's copy of the id list
   * (node-names.ts): one LLEN when no node was added since the last call.
   */
  async identities(): Promise<string[]> {
    await this.names.refresh();
    return this.names.sorted();
  }

  /** Last-seen ms from which a connected node counts as online (docs/agent-protocol.md §2: 3 missed heartbeats). */
  freshSinceMs(nowMs = Date.now()): number {
    return nowMs - STALE_AFTER_HEARTBEATS * this.heartbeatIntervalS * 1000;
  }

  /** The Redis client and keys, for the discovery planner that queries the index. */
  get store(): { redis: Redis; keys: RedisKeys } {
    return { redis: this.redis, keys: this.keys };
  }

  /**
   * True when the node's flag is set, it was heard from within STALE_AFTER_HEARTBEATS intervals,
   * and the replica holding its stream is not among `deadReplicas` (its lease ended).
   */
  isOnline(node: IndexedNode, nowMs = Date.now(), deadReplicas: ReadonlySet<string> = new Set()): boolean {
    if (node.owner !== '' && deadReplicas.has(node.owner)) return false;
    return node.connected && nowMs - node.lastSeenMs <= STALE_AFTER_HEARTBEATS * this.heartbeatIntervalS * 1000;
  }
}
