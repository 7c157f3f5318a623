import { createHash } from 'node:crypto';
import Redis, { Cluster } from 'ioredis';
import type { Logger } from './logger';
import { loadScripts } from './lua-script';
import { metrics } from './metrics';
import type { RedisClient } from './redis-client';
import { parseRedisUrl, REDIS_URL_EXPECTED } from './redis-url';

export type { RedisClient } from './redis-client';

/** Options of `createRedis`. */
export interface RedisOptions {
  /** Redis URL, `redis://host:port[/db]`, or a Redis Cluster's seeds (lib/redis-url.ts). */
  url: string;
  /** Logger for connection events. */
  log: Logger;
  /** Connection name shown by `CLIENT LIST`, for example `baton-scheduler`. */
  connectionName: string;
}

/** Commands retried across a reconnect before failing; a restart of Redis takes ~1 s. */
const MAX_RETRIES_PER_REQUEST = 10;

/** Reconnect quickly at first, then at most every 2 s, forever: Redis restarts must not require restarting Baton. */
const reconnectDelayMs = (times: number): number => Math.min(100 * times, 2000);

/**
 * Opens an ioredis client: a `Cluster` when the URL names a Redis Cluster, else one server's
 * client. Key names are never prefixed here: every key is built by `RedisKeys` so that one
 * module documents them all.
 */
export function createRedis(options: RedisOptions): RedisClient {
  const target = parseRedisUrl(options.url);
  if (!target) throw new Error(`redis-url '${options.url}' is not a Redis URL; ${REDIS_URL_EXPECTED}`);
  const common = { connectionName: options.connectionName, maxRetriesPerRequest: MAX_RETRIES_PER_REQUEST };
  const client: RedisClient =
    target.kind === 'server'
      ? new Redis(target.url, { ...common, retryStrategy: reconnectDelayMs })
      : new Cluster(target.seeds, {
          clusterRetryStrategy: reconnectDelayMs,
          // A slot whose master is failing over or restarting answers CLUSTERDOWN/TRYAGAIN for a
          // moment: retried after this delay, not surfaced.
          retryDelayOnClusterDown: 200,
          retryDelayOnTryAgain: 200,
          redisOptions: {
            ...common,
            ...(target.username ? { username: target.username } : {}),
            ...(target.password ? { password: target.password } : {}),
            ...(target.tls ? { tls: {} } : {}),
          },
        });
  // An 'error' listener must exist from the start, or ioredis reports "Unhandled error event".
  let lastError = '';
  client.on('error', (err: Error) => {
    metrics.redisErrors.inc();
    if (err.message !== lastError) options.log.warn({ err: err.message }, 'redis connection problem');
    lastError = err.message;
  });
  client.on('ready', () => {
    lastError = '';
    options.log.debug('redis ready');
    loadScripts(client).catch((err: Error) => options.log.warn({ err: err.message }, 'loading the Lua scripts failed; each loads on its first use instead'));
  });
  return client;
}

/** How long `closeRedis` waits for a polite QUIT before dropping the connection, in ms. */
export const REDIS_QUIT_TIMEOUT_MS = 1_000;

/**
 * Closes a client when a process stops: QUIT (pending replies arrive first), or a plain
 * disconnect when Redis does not answer in time (it may be the reason we are stopping).
 */
export async function closeRedis(redis: RedisClient, timeoutMs = REDIS_QUIT_TIMEOUT_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  await Promise.race([redis.quit().catch(() => undefined), timedOut]);
  clearTimeout(timer);
  redis.disconnect();
}

/**
 * Node ids per chunk of the discovery index. Every index key but the id allocation belongs to one
 * chunk, the nodes whose dense id is in `[c * INDEX_CHUNK_NODES, (c + 1) * INDEX_CHUNK_NODES)`,
 * and carries the chunk's hash tag `{idx:<c>}`, so that the scripts writing and reading the
 * index touch one Redis Cluster slot per call (docs/discovery-index.md says why 4,096).
 */
export const INDEX_CHUNK_NODES = 4096;

/**
 * Buckets of rare fact values per index chunk (`RedisKeys.rareFacts`): a value held by fewer
 * nodes of a chunk than the scheduler's threshold is a record in one of them instead of a set
 * of its own (docs/discovery-index.md).
 */
export const RARE_FACT_BUCKETS = 1024;

/** Bytes of a rare fact value's digest in its bucket's records (each record: the digest, then the node's offset in 2 bytes). */
export const RARE_FACT_DIGEST_BYTES = 12;

/** Where a fact value's records go while it is rare: its bucket's key and its digest. */
export interface RareFactEntry {
  bucketKey: string;
  digest: Buffer;
}

/** The chunk of the discovery index holding node id `id`. */
export function indexChunkOf(id: number): number {
  return Math.floor(id / INDEX_CHUNK_NODES);
}

/** Digests of fact value keys (after the chunk's tag) computed lately; `RARE_DIGESTS_CACHED` at most. */
const RARE_DIGESTS = new Map<string, Buffer>();
const RARE_DIGESTS_CACHED = 50_000;

/**
 * Every Redis key Baton uses, under one configurable prefix, and the hash tag that decides its
 * Redis Cluster slot: every multi-key script and command takes keys of one tag only. Per-run
 * keys carry the task id (`{<task id>}`), per-replica keys the replica id, the discovery index
 * its chunk (`{idx:<c>}`, c = node id / INDEX_CHUNK_NODES; bitmaps of a chunk are over the
 * node's offset in it, id - c * INDEX_CHUNK_NODES), node id allocation and the name lists
 * `{nodes}`, replica leases `{replicas}`. Keys without a tag are read or written alone.
 *
 * | key                              | tag        | type   | owner     | content                                         |
 * |----------------------------------|------------|--------|-----------|-------------------------------------------------|
 * | `<p>:{nodes}:ids`                | `{nodes}`  | hash   | scheduler | identity → the node's dense integer id (0, 1, 2 ...; assigned once, never reused) |
 * | `<p>:{nodes}:names`              | `{nodes}`  | list   | scheduler | id → identity (the element at index id); append-only, so a reader refreshes its copy by reading past its length |
 * | `<p>:{nodes}:classnames`         | `{nodes}`  | set    | scheduler | every lowercased class name ever indexed (for class regexes); added to before the nodes having it are written |
 * | `<p>:{nodes}:agentnames`         | `{nodes}`  | set    | scheduler | every agent name ever indexed (for agent regexes), as class names |
 * | `<p>:{idx:<c>}:node:<identity>`  | `{idx:<c>}`| hash   | scheduler | identity, online (0/1), last_seen (ms), facts, classes, agents (JSON), version, session (id of the agent session that wrote it), owner (replica id), index (the node's entries, JSON) |
 * | `<p>:{idx:<c>}:offsets`          | `{idx:<c>}`| hash   | scheduler | identity → its offset in the chunk (its bit in the chunk's bitmaps) |
 * | `<p>:{idx:<c>}:nodes`            | `{idx:<c>}`| zset   | scheduler | the chunk's known identities, scored by last-seen ms |
 * | `<p>:{idx:<c>}:online`           | `{idx:<c>}`| zset   | scheduler | the chunk's identities whose agent is connected, scored by last-seen ms (stale ones are filtered by score) |
 * | `<p>:{idx:<c>}:fact:<json [path, value]>` | `{idx:<c>}` | set | scheduler | the chunk's identities whose scalar fact at dotted `path` has the lowercased text `value`: only as written before rare fact values (a value now is a record of `rare:<b>` while rare, then its bitmap); a set met is kept up, and turned into the bitmap at BITMAP_MIN_MEMBERS (scheduler/node-index.ts) |
 * | `<p>:{idx:<c>}:rare:<b>`         | `{idx:<c>}`| string | scheduler | records of the chunk's rare fact values whose digest falls in bucket b (0 .. RARE_FACT_BUCKETS - 1): per node holding such a value, RARE_FACT_DIGEST_BYTES of the value's digest (`rareFactOf`) then the node's offset (2 bytes, big-endian); a value held by RARE_FACT_HOLDERS nodes of the chunk moves to its bitmap (`bits:fact:…`) |
 * | `<p>:{idx:<c>}:factnum:<path>`   | `{idx:<c>}`| zset   | scheduler | offsets (as text) of the chunk's nodes whose fact at `path` is a number (or numeric text), scored by it |
 * | `<p>:{idx:<c>}:class:<lowercased class>` | `{idx:<c>}` | set | scheduler | the chunk's identities with that Puppet class (small; then its bitmap, as fact sets) |
 * | `<p>:{idx:<c>}:agent:<agent>`    | `{idx:<c>}`| set    | scheduler | the chunk's identities offering that agent (small; then its bitmap, as fact sets) |
 * | `<p>:{idx:<c>}:bits:allnodes`    | `{idx:<c>}`| string | scheduler | bitmap over offsets of every known node of the chunk (the universe a NOT in a compound filter subtracts from) |
 * | `<p>:{idx:<c>}:bits:onlineset`   | `{idx:<c>}`| string | scheduler | bitmap over offsets of the nodes in the chunk's `online` |
 * | `<p>:{idx:<c>}:bits:<set key after the tag>` | `{idx:<c>}` | string | scheduler | bitmap over offsets of a membership (`…:bits:fact:…`, `…:bits:class:…`, `…:bits:agent:…`) instead of the set once it reached BITMAP_MIN_MEMBERS |
 * | `<p>:{idx:<c>}:bitmapped`        | `{idx:<c>}`| hash   | scheduler | membership set key → 1 for the chunk's sets now held as bitmaps |
 * | `<p>:{idx:<c>}:owner:<replica id>` | `{idx:<c>}` | string | scheduler | bitmap over offsets of the chunk's nodes whose agent stream that scheduler replica holds (moved on Hello in the write that marks the node online, so under the chunk's tag rather than the replica's) |
 * | `<p>:{replicas}:leases`          | `{replicas}` | zset   | scheduler | scheduler replica id (`<name>-<epoch>`, never reused) → when its lease ends, ms on the Redis clock (0: it left); a replica whose lease ended is dead, its nodes not online, until survivors have taken over and removed it (scheduler/replica-lease.ts) |
 * | `<p>:{replicas}:heartbeat-intervals` | `{replicas}` | zset | scheduler | scheduler replica id → the longest heartbeat interval its agents hold, in s, written at each lease renewal; discovery judges freshness against the longest of the live replicas' (scheduler/replica-lease.ts); removed with the replica's lease entry |
 * | `<p>:{replicas}:epoch`           | `{replicas}` | string | scheduler | the last fencing epoch handed out (INCR), the suffix of each new replica id |
 * | `<p>:replica:{<id>}:dispatch`    | `{<id>}` | stream | scheduler | commands for the agents held by replica `<id>`: one entry per kind, run and chunk of nodes, naming the command stored once in `:commands` (consumer group `dispatch`; a dead replica's entries are claimed by a survivor) |
 * | `<p>:run:{<id>}:commands`        | `{<id>}` | hash   | scheduler | dispatch call id → the DownloadCommand or RunCommand it sends (protobuf; a RunCommand holds the input, sensitive values included), stored once per call for every replica, deleted once the call's replies are in or its wait ended (and expires) |
 * | `<p>:run:{<id>}:replies`         | `{<id>}` | stream | scheduler | each replica's aggregated outcome of a dispatch entry of the run (nodes done, nodes failed or unreachable); expires |
 * | `<p>:run:{<id>}:finished`        | `{<id>}` | stream | scheduler | nodes whose final result reached a replica that does not coordinate the run, once stored: the coordinator reads them to move its batches on; expires |
 * | `<p>:run:{<id>}`                 | `{<id>}` | string | results   | the Run record as proto JSON                    |
 * | `<p>:run:{<id>}:results`         | `{<id>}` | hash   | results   | host → NodeResult as proto JSON                 |
 * | `<p>:run:{<id>}:brief`           | `{<id>}` | hash   | results   | host → that node's small result fields (state, exit code, times...; encoding: services/results/run-scripts.ts), beside `:results` so a slim read never reads output |
 * | `<p>:run:{<id>}:events`          | `{<id>}` | stream | results   | the run's event log, one RunEvent per entry; a node_result event holds no output (stdout, stderr, value): readers take it from `:results` (see `:resultevent`) |
 * | `<p>:run:{<id>}:final`           | `{<id>}` | set    | results   | hosts of the run whose result is final (its size says when the run is done) |
 * | `<p>:run:{<id>}:header`          | `{<id>}` | hash   | results   | the run's constant-size facts: task, caller, nodes (the node count), state (RunState number, kept with the record's); read instead of the record when a result is recorded (services/results/run-header.ts) |
 * | `<p>:run:{<id>}:resultevent`     | `{<id>}` | hash   | results   | host → id of the event that recorded the node's current result: that event gets the result's output when it is read (events hold no output) |
 * | `<p>:runs`                       | none | zset   | results   | task ids scored by creation time (ms)           |
 * | `<p>:runs:task:<task>`           | none | zset   | results   | task ids of one task's runs, scored by creation time (ms) |
 * | `<p>:runs:caller:<caller>`       | none | zset   | results   | task ids of one caller's runs, scored by creation time (ms) |
 * | `<p>:request:<json [caller, id]>` | none | string | scheduler | the task id a RunTask request id started (idempotency); expires |
 * | `<p>:run:{<id>}:orch`            | `{<id>}` | hash   | scheduler | the run's orchestration state while it is coordinated: phase, epoch, coordinator, batch, batches, batch_size, sleep_ms, sleep_until, gate_deadline, cancel, sending (services/scheduler/run-state.ts); deleted when the run ends |
 * | `<p>:run:{<id>}:lease`           | `{<id>}` | string | scheduler | the coordinator lease: the coordinating replica's id, expiring unless renewed |
 * | `<p>:run:{<id>}:plan`            | `{<id>}` | string | scheduler | JSON array of the nodes the run command goes to, in batch order (batches are recomputed from it and `batch_size`) |
 * | `<p>:run:{<id>}:command`         | `{<id>}` | string | scheduler | the run command (RunCommand proto JSON, sensitive input included) a coordinator taking over re-sends; deleted when the run ends |
 * | `<p>:orch:active`                | none | zset   | scheduler | task ids of runs with orchestration state, scored by creation time (ms): what a scheduler scans for runs whose coordinator is gone |
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  /** Hash identity → dense node id. */
  nodeIds(): string {
    return `${this.prefix}:{nodes}:ids`;
  }

  /** List id → identity, append-only. */
  nodeNames(): string {
    return `${this.prefix}:{nodes}:names`;
  }

  /** Set of every lowercased class name indexed. */
  classNames(): string {
    return `${this.prefix}:{nodes}:classnames`;
  }

  /** Set of every agent name indexed. */
  agentNames(): string {
    return `${this.prefix}:{nodes}:agentnames`;
  }

  /** The start of every key of index chunk `chunk`, its hash tag included. */
  private chunk(chunk: number): string {
    return `${this.prefix}:{idx:${chunk}}`;
  }

  /** Hash describing one node of chunk `chunk`. */
  node(chunk: number, identity: string): string {
    return `${this.chunk(chunk)}:node:${identity}`;
  }

  /** Hash identity → offset in the chunk. */
  nodeOffsets(chunk: number): string {
    return `${this.chunk(chunk)}:offsets`;
  }

  /** Sorted set of a chunk's known nodes by last-seen time. */
  nodes(chunk: number): string {
    return `${this.chunk(chunk)}:nodes`;
  }

  /** Sorted set of a chunk's identities of connected agents, scored by last-seen ms. */
  online(chunk: number): string {
    return `${this.chunk(chunk)}:online`;
  }

  /** Bitmap over offsets of every known node of a chunk. */
  allNodesBitmap(chunk: number): string {
    return `${this.chunk(chunk)}:bits:allnodes`;
  }

  /** Bitmap over offsets of the members of `online(chunk)`. */
  onlineBitmap(chunk: number): string {
    return `${this.chunk(chunk)}:bits:onlineset`;
  }

  /** Set of a chunk's identities whose scalar fact at `path` has the (lowercased) text `value`. */
  factValue(chunk: number, path: string, value: string): string {
    // JSON keeps the key unambiguous whatever characters the path and the value hold.
    return `${this.chunk(chunk)}:fact:${JSON.stringify([path, value])}`;
  }

  /**
   * For a fact value's set key (`factValue`), the chunk's bucket of rare fact values its records
   * go to while it is rare, and its digest: SHA-256 of the key after the chunk's tag (so the same
   * in every chunk), its first two bytes choosing the bucket. Undefined for other keys (classes,
   * agents). 96 bits of digest leave no chance of two values of a bucket meeting, and finding a
   * value with the digest of a given one is out of reach.
   */
  rareFactOf(setKey: string): RareFactEntry | undefined {
    const tagEnd = setKey.indexOf('}:', this.prefix.length) + 2;
    if (tagEnd < 2 || !setKey.startsWith('fact:', tagEnd)) return undefined;
    let digest = RARE_DIGESTS.get(setKey.slice(tagEnd));
    if (!digest) {
      digest = createHash('sha256')
        .update(setKey.slice(tagEnd))
        .digest()
        .subarray(0, RARE_FACT_DIGEST_BYTES + 2);
      // Common values come back with every node (a cache); unique ones would only fill it.
      if (RARE_DIGESTS.size >= RARE_DIGESTS_CACHED) RARE_DIGESTS.clear();
      RARE_DIGESTS.set(setKey.slice(tagEnd), digest);
    }
    return { bucketKey: `${setKey.slice(0, tagEnd)}rare:${digest.readUInt16BE(0) % RARE_FACT_BUCKETS}`, digest: digest.subarray(2) };
  }

  /** String of the records of a chunk's rare fact values in bucket `bucket` (`rareFactOf`). */
  rareFacts(chunk: number, bucket: number): string {
    return `${this.chunk(chunk)}:rare:${bucket}`;
  }

  /** Sorted set of the offsets of a chunk's nodes whose fact at `path` is numeric, scored by its value. */
  factNumber(chunk: number, path: string): string {
    return `${this.chunk(chunk)}:factnum:${path}`;
  }

  /** Set of a chunk's identities with a Puppet class (name lowercased by the caller). */
  nodeClass(chunk: number, lowercasedClass: string): string {
    return `${this.chunk(chunk)}:class:${lowercasedClass}`;
  }

  /** Set of a chunk's identities offering an agent. */
  nodeAgent(chunk: number, agent: string): string {
    return `${this.chunk(chunk)}:agent:${agent}`;
  }

  /** The bitmap over offsets mirroring a membership set built by this class (`factValue()`, `nodeClass()`, `nodeAgent()`). */
  bitmapOf(setKey: string): string {
    // `bits:` after the chunk's tag: no other key of a chunk starts with `bits:` but the
    // all-nodes and online bitmaps, whose names no set key after the tag has.
    const tagEnd = setKey.indexOf('}:', this.prefix.length) + 2;
    return `${setKey.slice(0, tagEnd)}bits:${setKey.slice(tagEnd)}`;
  }

  /** Hash of a chunk's membership set keys now held as bitmaps (`bitmapOf`). */
  bitmappedSets(chunk: number): string {
    return `${this.chunk(chunk)}:bitmapped`;
  }

  /** Bitmap over offsets of a chunk's nodes connected to scheduler replica `replicaId`. */
  ownerBitmap(chunk: number, replicaId: string): string {
    return `${this.chunk(chunk)}:owner:${replicaId}`;
  }

  /** Sorted set replica id → lease end (ms, Redis clock). */
  replicaLeases(): string {
    return `${this.prefix}:{replicas}:leases`;
  }

  /** Sorted set replica id → the longest heartbeat interval its agents hold, in s (written at each lease renewal). */
  replicaHeartbeatIntervals(): string {
    return `${this.prefix}:{replicas}:heartbeat-intervals`;
  }

  /** Counter of fencing epochs. */
  replicaEpochCounter(): string {
    return `${this.prefix}:{replicas}:epoch`;
  }

  /** Stream of dispatch entries for the agents held by replica `replicaId`. */
  replicaDispatch(replicaId: string): string {
    return `${this.prefix}:replica:{${replicaId}}:dispatch`;
  }

  /** A run's dispatched commands, call id → command. */
  runCommands(taskId: string): string {
    return `${this.prefix}:run:{${taskId}}:commands`;
  }

  /** A run's stream of dispatch replies. */
  runReplies(taskId: string): string {
    return `${this.prefix}:run:{${taskId}}:replies`;
  }

  /** A run's stream of nodes whose final result another replica than the coordinator stored. */
  runFinished(taskId: string): string {
    return `${this.prefix}:run:{${taskId}}:finished`;
  }

  /** A run's record. */
  run(taskId: string): string {
    return `${this.prefix}:run:{${taskId}}`;
  }

  /** A run's node results, host → result. */
  runResults(taskId: string): string {
    return `${this.prefix}:run:{${taskId}}:results`;
  }

  /**
   * A run's node results without their output, host → a short text per node (written beside
   * `runResults` by the same scripts), for slim reads such as `bolt_task(...)` terms.
   */
  runBriefs(taskId: string): string {
    return `${this.prefix}:run:{${taskId}}:brief`;
  }

  /** A run's event log (Redis Stream). */
  runEvents(taskId: string): string {
    return `${this.prefix}:run:{${taskId}}:events`;
  }

  /** The hosts of a run whose result is final. */
  runFinalHosts(taskId: string): string {
    return `${this.prefix}:run:{${taskId}}:final`;
  }

  /** A run's constant-size header (task, caller, node count, state): what recording a result needs of the run. */
  runHeader(taskId: string): string {
    return `${this.prefix}:run:{${taskId}}:header`;
  }

  /** A run's creation claim while it is being created: the creating call's token, with a time to live. */
  runCreation(taskId: string): string {
    return `${this.prefix}:run:{${taskId}}:creating`;
  }

  /** A run's host → id of the event that recorded the node's current result. */
  runResultEvents(taskId: string): string {
    return `${this.prefix}:run:{${taskId}}:resultevent`;
  }

  /** All runs by creation time. */
  runs(): string {
    return `${this.prefix}:runs`;
  }

  /** One task's runs by creation time. */
  runsByTask(task: string): string {
    return `${this.prefix}:runs:task:${task}`;
  }

  /** One caller's runs by creation time. */
  runsByCaller(caller: string): string {
    return `${this.prefix}:runs:caller:${caller}`;
  }

  /** A run's orchestration state (hash), while a scheduler coordinates it. */
  runOrchestration(taskId: string): string {
    return `${this.prefix}:run:{${taskId}}:orch`;
  }

  /** A run's coordinator lease (string: the coordinating replica's id, with a TTL). */
  runLease(taskId: string): string {
    return `${this.prefix}:run:{${taskId}}:lease`;
  }

  /** The nodes a run's command goes to, in batch order (JSON array). */
  runPlan(taskId: string): string {
    return `${this.prefix}:run:{${taskId}}:plan`;
  }

  /** A run's command (RunCommand proto JSON), for a coordinator that takes the run over. */
  runCommand(taskId: string): string {
    return `${this.prefix}:run:{${taskId}}:command`;
  }

  /** The task ids of runs with orchestration state, by creation time. */
  activeRuns(): string {
    return `${this.prefix}:orch:active`;
  }

  /** The task id a caller's RunTask request id started (idempotency key). */
  runRequest(caller: string, requestId: string): string {
    // JSON keeps the key unambiguous whatever characters the caller id holds.
    return `${this.prefix}:request:${JSON.stringify([caller, requestId])}`;
  }
}
