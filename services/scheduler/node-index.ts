import { execPerKey, type RedisClient as Redis } from '../../lib/redis-client';
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

/** Marks a node offline only while its entry belongs to the calling session, last seen when its stream ended. */
const OFFLINE_SCRIPT = LuaScript.fromFile(__dirname, 'mark-node-offline-5plus');

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

/** Writes a batch of nodes and replaces their index entries (sets, bitmaps, numeric facts, owners) in one step. */
const UPSERT_SCRIPT = LuaScript.fromFile(__dirname, 'upsert-nodes-7plus');

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
    const replies = await execPerKey(
      this.redis,
      identities,
      (id) => this.keys.node(id),
      (pipeline, id) => pipeline.hgetall(this.keys.node(id)),
    );
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
    const [replies, dead] = await Promise.all([
      execPerKey(
        this.redis,
        identities,
        (id) => this.keys.node(id),
        (pipeline, id) => pipeline.hmget(this.keys.node(id), 'online', 'last_seen', 'owner'),
      ),
      this.deadReplicas().then((ids) => new Set(ids)),
    ]);
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
