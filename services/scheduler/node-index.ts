import { execPerKey, type RedisClient as Redis } from '../../lib/redis-client';
import type { Hello } from '../../gen/baton/v1/agent_gateway_service';
import { INDEX_CHUNK_NODES, indexChunkOf, type RedisKeys } from '../../lib/redis';
import { LuaScript } from '../../lib/lua-script';
import { indexText, readNumber, scalarFacts } from '../../lib/filter-language';
import { NodeNames } from './node-names';

/** A node is discovered as online only if it was heard from within this many heartbeat intervals (docs/agent-protocol.md §2). */
export const STALE_AFTER_HEARTBEATS = 3;

/** One entry of the discovery index, as stored in the node's hash (`RedisKeys.node`). */
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

/** Marks nodes of one chunk offline, each only while its entry belongs to the session whose stream ended, last seen then. */
const OFFLINE_SCRIPT = LuaScript.fromFile(__dirname, 'mark-nodes-offline-4plus');

/**
 * Nodes marked offline by one OFFLINE_SCRIPT call at most. Streams end together by the thousand
 * (a replica draining or fenced, a fleet's connections cut, agents sent away to rebalance): one
 * script call each cost the replica a command's encoding and socket write per node, and Redis a
 * call per node, while a batch writes them in one call per chunk.
 */
export const OFFLINE_BATCH_MAX = 1_000;

/**
 * A membership set (class, agent; a fact value's set written before rare fact values) of an
 * index chunk that reaches this many members is turned into a bitmap over the chunk's offsets
 * and is kept as one from then on (the chunk's `bitmapped` hash lists those sets). Below it the
 * set of names is cheap to read (a few kB); a bitmap takes one bit per offset up to the highest
 * set (at most 512 bytes per chunk). Above it a bitmap is both what discovery combines
 * (discovery-plan.ts) and far smaller than the set of names. Fact values have records of rare
 * values instead of sets (RARE_FACT_HOLDERS).
 */
export const BITMAP_MIN_MEMBERS = 256;

/**
 * Nodes of an index chunk from which a fact value has a bitmap of its own (the scheduler's
 * `index-rare-fact-holders` setting). Below it the value is a record of 14 bytes per node in one
 * of the chunk's buckets of rare values (`RedisKeys.rareFacts`), so a value unique to a node (a
 * serial number, a MAC address, an uptime) costs no key; a query finds its nodes by a search of
 * one bucket per chunk. At 16 holders a full chunk's bitmap (512 bytes) costs about what 16
 * names in a set did, and 16 records cost 224 bytes; a bitmap falls back to records below half
 * of it, so a value held by about 16 nodes does not move on every Hello (docs/discovery-index.md).
 */
export const RARE_FACT_HOLDERS = 16;

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

/**
 * Writes of one upsert the script may answer STALE (the node's stored entries are not those read
 * before the call) before the upsert fails with IndexWriteConflictError. A STALE answer means
 * another scheduler rewrote the node in between, which the next try, reading again, settles; one
 * that repeats this often is not a race but a node that cannot be written (another scheduler
 * rewriting it without pause, or stored entries this scheduler reads otherwise than the script
 * does), and retrying it without end would hold its agent's Hello and Redis forever.
 */
export const UPSERT_STALE_TRIES_MAX = 20;

/** STALE answers after which a batch's upserts are written each alone, so one node that cannot be written does not fail the others. */
const UPSERT_STALE_TRIES_IN_BATCH = 2;

/** An upsert the script answered STALE UPSERT_STALE_TRIES_MAX times in a row: the node is not written. */
export class IndexWriteConflictError extends Error {
  constructor(
    readonly identity: string,
    readonly tries: number,
  ) {
    super(
      `node ${identity} was not written to the discovery index: its stored entries changed between the read and the write ${tries} times in a row ` +
        '(another scheduler rewriting it without pause, or stored entries this scheduler cannot read)',
    );
    this.name = 'IndexWriteConflictError';
  }
}

/** Batches in flight at once: one being run by Redis while the next is sent. */
const UPSERT_BATCHES_IN_FLIGHT = 2;

/** Writes a batch of nodes of one index chunk and replaces their index entries (sets, bitmaps, numeric facts, owners) in one step. */
const UPSERT_SCRIPT = LuaScript.fromFile(__dirname, 'upsert-nodes-6plus');

/** Gives nodes their dense ids (new ones appended) and notes their class and agent names. */
const ALLOCATE_SCRIPT = LuaScript.fromFile(__dirname, 'allocate-node-ids-4');

/** Nodes given their ids by one ALLOCATE_SCRIPT call at most. */
const ALLOCATE_BATCH_MAX = 1_000;

/** A node's entries as its hash stores them (field `index`): membership set keys and [numeric fact zset key, score]. */
interface StoredEntries {
  sets: string[];
  zsets: Array<[string, string]>;
}

/** The stored entries of a node hash's `index` field; none when it is missing or not what this module writes. */
function storedEntries(text: string | null): StoredEntries {
  const parsed = parseJson<Partial<StoredEntries> | null>(text ?? undefined, null);
  const sets = Array.isArray(parsed?.sets) ? parsed.sets.filter((k): k is string => typeof k === 'string') : [];
  const zsets = Array.isArray(parsed?.zsets) ? parsed.zsets.filter((e): e is [string, string] => Array.isArray(e) && typeof e[0] === 'string') : [];
  return { sets, zsets };
}

/** A node waiting for its id, with its class and agent names. */
interface WaitingId {
  identity: string;
  classes: string[];
  agents: string[];
  resolve: (id: number) => void;
  reject: (err: unknown) => void;
}

function parseJson<T>(text: string | undefined, fallback: T): T {
  if (!text) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

/** A node whose stream ended, waiting for an OFFLINE_SCRIPT call. */
interface WaitingOffline {
  identity: string;
  chunk: number;
  sessionId: string;
  nowMs: number;
  resolve: (marked: boolean) => void;
  reject: (err: unknown) => void;
}

/** An upsert waiting for its batch: the node's chunk, its UPSERT_SCRIPT record and who waits for it. */
interface QueuedUpsert {
  identity: string;
  chunk: number;
  args: string[];
  /** The entries the record holds. */
  entries: StoredEntries;
  /** Written in a batch of its own (after its batch failed, or kept answering STALE). */
  alone?: boolean;
  /** Writes of it answered STALE so far (the first, unread one not counted). */
  staleTries?: number;
  /**
   * Whether the node's stored entries are read before the write. The first write of an upsert
   * is not: it declares the keys of the new entries alone, which is enough when the node is new
   * or its entries are unchanged (a reconnect: every Hello of a storm after a replica died), and
   * the script answers STALE when the stored entries name another key; the upsert then reads.
   */
  read?: boolean;
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
    /**
     * Seconds between agent heartbeats: the longest interval an agent may be given. Freshness is
     * judged against STALE_AFTER_HEARTBEATS of them, or of the interval `setLongestHeartbeatInterval`
     * says agents hold now.
     */
    readonly heartbeatIntervalS: number,
    /** Members from which a membership set also has a bitmap; default BITMAP_MIN_MEMBERS (tests lower it to reach both forms with a few nodes). */
    readonly bitmapMinMembers = BITMAP_MIN_MEMBERS,
    /** Nodes of a chunk from which a fact value has a bitmap rather than records of rare values; default RARE_FACT_HOLDERS. */
    readonly rareFactHolders = RARE_FACT_HOLDERS,
  ) {
    this.names = new NodeNames(redis, keys.nodeNames());
  }

  /** The id → identity copy discovery decodes bitmaps with. */
  readonly names: NodeNames;

  /** The longest heartbeat interval an agent may hold now, in s: what freshness is judged against. */
  private longestIntervalS: () => number = () => this.heartbeatIntervalS;

  /**
   * Judges freshness against the interval `longestS` gives (read at each judgement) instead of
   * heartbeatIntervalS: a scheduler passes the longest interval the live replicas' agents hold
   * (replica-lease.ts), so a fleet whose intervals never grew keeps STALE_AFTER_HEARTBEATS of the
   * shortest.
   */
  setLongestHeartbeatInterval(longestS: () => number): void {
    this.longestIntervalS = longestS;
  }

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

  /** Nodes waiting for an ALLOCATE_SCRIPT call, in the order they were asked for. */
  private waitingIds: WaitingId[] = [];
  private allocating = false;

  /**
   * The node's dense id (assigned on its first write, ALLOCATE_SCRIPT), with its class and agent
   * names noted. Asked for together while a call is under way (ALLOCATE_BATCH_MAX per call);
   * answered in the order asked for.
   */
  private allocateId(identity: string, classes: string[], agents: string[]): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.waitingIds.push({ identity, classes, agents, resolve, reject });
      this.allocateWaiting();
    });
  }

  private allocateWaiting(): void {
    if (this.allocating || this.waitingIds.length === 0) return;
    const batch = this.waitingIds.slice(0, ALLOCATE_BATCH_MAX);
    this.waitingIds = this.waitingIds.slice(batch.length);
    this.allocating = true;
    const identities = [...new Set(batch.map((w) => w.identity))];
    const classes = [...new Set(batch.flatMap((w) => w.classes))];
    const agents = [...new Set(batch.flatMap((w) => w.agents))];
    const keys = [this.keys.nodeIds(), this.keys.nodeNames(), this.keys.classNames(), this.keys.agentNames()];
    ALLOCATE_SCRIPT.run(this.redis, keys, [identities.length, classes.length, ...identities, ...classes, ...agents])
      .then(
        (reply) => {
          const ids = new Map(identities.map((name, i) => [name, Number((reply as string[])[i])]));
          for (const w of batch) w.resolve(ids.get(w.identity)!);
        },
        (err: unknown) => {
          for (const w of batch) w.reject(err);
        },
      )
      .finally(() => {
        this.allocating = false;
        this.allocateWaiting();
      });
  }

  /**
   * Writes a node from its Hello (or a FactsUpdate folded into it) and marks it online, owned by
   * `sessionId`; its previous fact, class and agent entries are replaced atomically. The node
   * gets its id first (its index chunk); upserts asked for while earlier ones are being written
   * go to Redis together (UPSERT_BATCH_MAX per script call, nodes of one chunk); those of one
   * node are written in the order they were asked for.
   */
  upsert(hello: Hello, sessionId: string, nowMs = Date.now()): Promise<void> {
    if (this.replica && !this.replica.held) return Promise.reject(new Error('this scheduler replica holds no lease in Redis'));
    const classes = [...new Set(hello.classes.map((c) => c.toLowerCase()))];
    const agents = [...new Set(hello.agents)];
    // Ids come in the order asked for, so the upserts of one node are queued in that order.
    const written = this.allocateId(hello.identity, classes, agents).then(
      (id) =>
        new Promise<void>((resolve, reject) => {
          const chunk = indexChunkOf(id);
          const { args, entries } = this.record(hello, sessionId, nowMs, id, classes, agents);
          this.queued.push({ identity: hello.identity, chunk, args, entries, resolve, reject });
          this.writeQueued();
        }),
    );
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

  /** A node's UPSERT_SCRIPT record and the entries it holds, in the node's chunk. */
  private record(hello: Hello, sessionId: string, nowMs: number, id: number, classes: string[], agents: string[]): { args: string[]; entries: StoredEntries } {
    const chunk = indexChunkOf(id);
    const facts = hello.facts ?? {};
    const sets = new Set<string>();
    const zsets: Array<[string, string]> = [];
    const seenNumeric = new Set<string>();
    // The values discovery's in-memory path resolves (lib/filter-language fact-values.ts).
    for (const [path, value] of scalarFacts(facts)) {
      sets.add(this.keys.factValue(chunk, path, indexText(value)));
      const n = readNumber(value);
      if (n !== undefined && !seenNumeric.has(path)) {
        seenNumeric.add(path);
        zsets.push([this.keys.factNumber(chunk, path), String(n)]);
      }
    }
    for (const c of classes) sets.add(this.keys.nodeClass(chunk, c));
    for (const a of agents) sets.add(this.keys.nodeAgent(chunk, a));
    const entries = { sets: [...sets], zsets };
    const args = [
      hello.identity,
      String(id - chunk * INDEX_CHUNK_NODES),
      String(nowMs),
      sessionId,
      JSON.stringify(facts),
      JSON.stringify(hello.classes),
      JSON.stringify(hello.agents),
      hello.version,
      JSON.stringify(entries),
      String(entries.sets.length),
      String(zsets.length),
      ...entries.sets,
      ...zsets.flat(),
    ];
    return { args, entries };
  }

  /** Sends queued upserts while fewer than UPSERT_BATCHES_IN_FLIGHT batches are being written. */
  private writeQueued(): void {
    while (this.batchesInFlight < UPSERT_BATCHES_IN_FLIGHT) {
      const batch = this.takeBatch();
      if (batch.length === 0) return;
      this.batchesInFlight++;
      for (const u of batch) this.writing.add(u.identity);
      this.writeBatch(batch)
        .then(
          (reply) => {
            if (Array.isArray(reply) && reply[0] === 'UNKNOWN_OWNER') {
              // A node of a replica this one had not heard of (it joined since the last
              // renewal): written again, with that replica's bitmap too.
              this.peers.add(String(reply[1]));
              this.queued.unshift(...batch);
              return;
            }
            if (Array.isArray(reply) && reply[0] === 'STALE' && batch.some((u) => !u.read)) {
              // A node of the batch written without reading its entries has others stored: the
              // unread ones read them now. Not counted: which node it was is not known.
              this.queued.unshift(...batch.map((u) => ({ ...u, read: true })));
              return;
            }
            if (Array.isArray(reply) && reply[0] === 'STALE') {
              // Another scheduler rewrote a node between the read of its entries and the
              // write: read again and written again, a bounded number of times.
              const retry: QueuedUpsert[] = [];
              for (const u of batch) {
                const staleTries = (u.staleTries ?? 0) + 1;
                if (staleTries >= UPSERT_STALE_TRIES_MAX) u.reject(new IndexWriteConflictError(u.identity, staleTries));
                else retry.push({ ...u, staleTries, alone: u.alone || staleTries >= UPSERT_STALE_TRIES_IN_BATCH });
              }
              this.queued.unshift(...retry);
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
   * One UPSERT_SCRIPT call for a batch of one chunk: the stored entries of the nodes that `read`
   * are read first, so that the call declares every key it touches (their membership sets with
   * their bitmaps and, for fact values, their buckets of rare values; their numeric fact zsets;
   * old and new); the others declare their new entries' keys alone.
   */
  private async writeBatch(batch: QueuedUpsert[]): Promise<unknown> {
    const chunk = batch[0].chunk;
    const nodeKeys = batch.map((u) => this.keys.node(chunk, u.identity));
    const toRead = nodeKeys.filter((_, i) => batch[i].read);
    const read = await execPerKey(
      this.redis,
      toRead,
      (k) => k,
      (pipeline, k) => pipeline.hget(k, 'index'),
    );
    const stored = read.map(([err, text]) => {
      if (err) throw err;
      return storedEntries(text as string | null);
    });
    const sets = new Set<string>();
    const zsets = new Set<string>();
    for (const e of [...stored, ...batch.map((u) => u.entries)]) {
      for (const k of e.sets) sets.add(k);
      for (const [k] of e.zsets) zsets.add(k);
    }
    const keys = [
      this.keys.nodes(chunk),
      this.keys.online(chunk),
      this.keys.nodeOffsets(chunk),
      this.keys.allNodesBitmap(chunk),
      this.keys.onlineBitmap(chunk),
      this.keys.bitmappedSets(chunk),
      ...nodeKeys,
    ];
    const digests: Array<Buffer | string> = [];
    for (const k of sets) {
      const rare = this.keys.rareFactOf(k);
      keys.push(k, this.keys.bitmapOf(k), rare?.bucketKey ?? k);
      digests.push(rare?.digest ?? '');
    }
    keys.push(...zsets);
    const args: Array<string | number | Buffer> = [this.bitmapMinMembers, batch.length, sets.size, zsets.size, this.rareFactHolders, ...digests];
    for (const u of batch) for (const a of u.args) args.push(a);
    const peers = [...this.peers];
    if (this.replica) {
      keys.push(this.keys.ownerBitmap(chunk, this.replica.id), ...peers.map((id) => this.keys.ownerBitmap(chunk, id)));
      args.push(this.replica.id, peers.length, ...peers);
    } else {
      args.push('', 0);
    }
    // By SHA (LuaScript): the script body is sent once, not with every batch.
    return UPSERT_SCRIPT.run(this.redis, keys, args);
  }

  /**
   * The next batch: queued upserts of the first one's index chunk in order, at most
   * UPSERT_BATCH_MAX and UPSERT_BATCH_MAX_ARGS (a first upsert always goes, whatever its size),
   * each node at most once and none of a node in a batch being written, so that the upserts of
   * one node are written in the order they were asked for; an upsert marked `alone` goes by
   * itself.
   */
  private takeBatch(): QueuedUpsert[] {
    const batch: QueuedUpsert[] = [];
    const left: QueuedUpsert[] = [];
    const blocked = new Set(this.writing);
    let args = 0;
    for (const u of this.queued) {
      const fits =
        !blocked.has(u.identity) &&
        (batch.length === 0 ||
          (u.chunk === batch[0].chunk && batch.length < UPSERT_BATCH_MAX && args + u.args.length <= UPSERT_BATCH_MAX_ARGS && !u.alone && !batch[0].alone));
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

  /** Nodes waiting for an OFFLINE_SCRIPT call, in the order they were asked for. */
  private waitingOffline: WaitingOffline[] = [];
  private markingOffline = false;

  /**
   * Marks a node offline (kept, last seen `nowMs`) unless another session owns it now; true
   * when it was marked. Asked for together while calls are under way, nodes go to Redis
   * together (one call per index chunk, OFFLINE_BATCH_MAX nodes per call); one alone goes at once.
   */
  async markOffline(identity: string, sessionId: string, nowMs = Date.now()): Promise<boolean> {
    // After the node's upserts asked for before: a stream that ends while its Hello waits for a
    // batch must leave the node offline, not see its Hello written after this.
    await this.lastUpserts.get(identity);
    const chunk = (await this.chunksOf([identity])).keys().next().value;
    if (chunk === undefined) return false;
    return new Promise<boolean>((resolve, reject) => {
      this.waitingOffline.push({ identity, chunk, sessionId, nowMs, resolve, reject });
      this.markWaitingOffline();
    });
  }

  private markWaitingOffline(): void {
    if (this.markingOffline || this.waitingOffline.length === 0) return;
    // Up to OFFLINE_BATCH_MAX nodes of every chunk, the chunks' calls at once: a fleet's
    // streams ending together span every chunk. Each node once per call (the script takes
    // distinct nodes): a second stream of a node that ended meanwhile waits for the next call.
    const byChunk = new Map<number, WaitingOffline[]>();
    const left: WaitingOffline[] = [];
    const taken = new Set<string>();
    for (const w of this.waitingOffline) {
      let list = byChunk.get(w.chunk);
      if (!list) byChunk.set(w.chunk, (list = []));
      if (list.length < OFFLINE_BATCH_MAX && !taken.has(w.identity)) list.push(w);
      else left.push(w);
      taken.add(w.identity);
    }
    this.waitingOffline = left;
    this.markingOffline = true;
    void Promise.all([...byChunk].map(([chunk, nodes]) => this.markChunkOffline(chunk, nodes))).finally(() => {
      this.markingOffline = false;
      this.markWaitingOffline();
    });
  }

  /** One OFFLINE_SCRIPT call for nodes of one chunk; settles each node's promise. */
  private async markChunkOffline(chunk: number, nodes: WaitingOffline[]): Promise<void> {
    const keys = [this.keys.online(chunk), this.keys.nodeOffsets(chunk), this.keys.onlineBitmap(chunk), this.keys.nodes(chunk)];
    const args: string[] = [String(nodes.length)];
    for (const w of nodes) {
      keys.push(this.keys.node(chunk, w.identity));
      args.push(w.identity, w.sessionId, String(w.nowMs));
    }
    if (this.replica) keys.push(this.keys.ownerBitmap(chunk, this.replica.id));
    try {
      const codes = (await OFFLINE_SCRIPT.run(this.redis, keys, args)) as number[];
      nodes.forEach((w, i) => w.resolve(codes[i] === 1));
    } catch (err) {
      for (const w of nodes) w.reject(err);
    }
  }

  /**
   * `identities` grouped by their index chunk, from the scheduler's copy of the ids (read again
   * when one is not in it); identities without an id (never written) are left out.
   */
  async chunksOf(identities: Iterable<string>): Promise<Map<number, string[]>> {
    const out = new Map<number, string[]>();
    const unknown: string[] = [];
    const add = (identity: string, id: number) => {
      const chunk = indexChunkOf(id);
      let list = out.get(chunk);
      if (!list) out.set(chunk, (list = []));
      list.push(identity);
    };
    for (const identity of identities) {
      const id = this.names.idOf(identity);
      if (id === undefined) unknown.push(identity);
      else add(identity, id);
    }
    if (unknown.length > 0) {
      await this.names.refresh();
      for (const identity of unknown) {
        const id = this.names.idOf(identity);
        if (id !== undefined) add(identity, id);
      }
    }
    return out;
  }

  /** How many index chunks hold the ids assigned so far (reads the new ids first). */
  async chunkCount(): Promise<number> {
    await this.names.refresh();
    return Math.ceil(this.names.count / INDEX_CHUNK_NODES);
  }

  /** Every node in the index, sorted by identity. Reads the whole index (tests and small fleets). */
  async list(): Promise<IndexedNode[]> {
    const chunks = Array.from({ length: await this.chunkCount() }, (_, c) => c);
    const names = await Promise.all(chunks.map((c) => this.redis.zrange(this.keys.nodes(c), 0, -1)));
    return this.load(names.flat());
  }

  /** The hashes of `identities` read with `fields` (undefined: every field), pipelined; nodes without an id are left out. */
  private async readNodes(identities: string[], fields?: string[]): Promise<Array<{ identity: string; reply: unknown }>> {
    const nodes = [...(await this.chunksOf(identities))].flatMap(([chunk, names]) =>
      names.map((identity) => ({ identity, key: this.keys.node(chunk, identity) })),
    );
    const replies = await execPerKey(
      this.redis,
      nodes,
      (n) => n.key,
      (pipeline, n) => (fields ? pipeline.hmget(n.key, ...fields) : pipeline.hgetall(n.key)),
    );
    return nodes.map(({ identity }, i) => ({ identity, reply: replies[i]?.[0] ? null : replies[i]?.[1] }));
  }

  /** The given nodes' entries, sorted by identity; identities without an entry are left out. */
  async load(identities: string[]): Promise<IndexedNode[]> {
    if (identities.length === 0) return [];
    const nodes: IndexedNode[] = [];
    for (const { reply } of await this.readNodes(identities)) {
      const h = reply as Record<string, string> | null;
      if (!h || !h.identity) continue; // listed in the zset but the hash is gone
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
   * per node, pipelined per index chunk); nodes without an entry are left out.
   */
  async presence(identities: string[]): Promise<Map<string, { connected: boolean; lastSeenMs: number }>> {
    const out = new Map<string, { connected: boolean; lastSeenMs: number }>();
    if (identities.length === 0) return out;
    const [replies, dead] = await Promise.all([this.readNodes(identities, ['online', 'last_seen', 'owner']), this.deadReplicas().then((ids) => new Set(ids))]);
    for (const { identity, reply } of replies) {
      const [online, lastSeen, owner] = (reply as Array<string | null> | null) ?? [];
      // A node held by a replica whose lease ended is not connected anywhere any more.
      const connected = online === '1' && !(owner && dead.has(owner));
      if (lastSeen != null) out.set(identity, { connected, lastSeenMs: Number(lastSeen) || 0 });
    }
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
    return nowMs - STALE_AFTER_HEARTBEATS * this.longestIntervalS() * 1000;
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
    return node.connected && nowMs - node.lastSeenMs <= STALE_AFTER_HEARTBEATS * this.longestIntervalS() * 1000;
  }
}
