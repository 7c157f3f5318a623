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
 * Every Redis key Baton uses, under one configurable prefix. Per-run keys carry the task id
 * as a hash tag (`{<task id>}`) so one run's keys live in one Redis Cluster slot.
 *
 * | key                              | type   | owner     | content                                         |
 * |----------------------------------|--------|-----------|-------------------------------------------------|
 * | `<p>:node:<identity>`            | hash   | scheduler | identity, online (0/1), last_seen (ms), facts, classes, agents (JSON), version, session (id of the agent session that wrote it) |
 * | `<p>:nodes`                      | zset   | scheduler | every known identity, scored by last-seen ms    |
 * | `<p>:online`                     | zset   | scheduler | identities whose agent is connected, scored by last-seen ms (stale ones are filtered by score) |
 * | `<p>:fact:<json [path, value]>`  | set    | scheduler | identities whose scalar fact at dotted `path` has the lowercased text `value`, while fewer than BITMAP_MIN_MEMBERS (scheduler/node-index.ts); then its bitmap replaces it |
 * | `<p>:factnum:<path>`             | zset   | scheduler | identities whose fact at `path` is a number (or numeric text), scored by it |
 * | `<p>:class:<lowercased class>`   | set    | scheduler | identities with that Puppet class (small; then its bitmap, as fact sets) |
 * | `<p>:agent:<agent>`              | set    | scheduler | identities offering that agent (small; then its bitmap, as fact sets) |
 * | `<p>:classnames`                 | set    | scheduler | every lowercased class name ever indexed (for class regexes) |
 * | `<p>:agentnames`                 | set    | scheduler | every agent name ever indexed (for agent regexes) |
 * | `<p>:tmp:<uuid>`                 | string | scheduler | a numeric range's BITOP result inside one discovery script call, deleted before it returns |
 * | `<p>:nodeids`                    | hash   | scheduler | identity → the node's dense integer id (0, 1, 2 ...; assigned once, never reused) |
 * | `<p>:nodenames`                  | list   | scheduler | id → identity (the element at index id); append-only, so a reader refreshes its copy by reading past its length |
 * | `<p>:bits:allnodes`              | string | scheduler | bitmap over node ids of every known node (the universe a NOT in a compound filter subtracts from) |
 * | `<p>:bits:onlineset`             | string | scheduler | bitmap over node ids of the nodes in `<p>:online` |
 * | `<p>:bits:<key without <p>:>`    | string | scheduler | bitmap over node ids of a membership: `<p>:bits:fact:…`, `<p>:bits:class:…`, `<p>:bits:agent:…` instead of the set once it reached BITMAP_MIN_MEMBERS (scheduler/node-index.ts) |
 * | `<p>:bitmapped`                  | hash   | scheduler | membership set key → 1 for the sets now held as bitmaps |
 * | `<p>:factvals:<path>`            | zset   | scheduler | the `<p>:fact:…` set key of each distinct value the numeric fact at `path` has, scored by the number (a range query ORs those sets' bitmaps) |
 * | `<p>:bits:owner:<replica id>`    | string | scheduler | bitmap over node ids of the nodes whose agent stream that scheduler replica holds (moved on Hello in the write that marks the node online; an index key, combined with `<p>:bits:onlineset` by discovery) |
 * | `<p>:{replicas}:leases`          | zset   | scheduler | scheduler replica id (`<name>-<epoch>`, never reused) → when its lease ends, ms on the Redis clock (0: it left); a replica whose lease ended is dead, its nodes not online, until survivors have taken over and removed it (scheduler/replica-lease.ts) |
 * | `<p>:{replicas}:epoch`           | string | scheduler | the last fencing epoch handed out (INCR), the suffix of each new replica id |
 * | `<p>:replica:{<id>}:dispatch`    | stream | scheduler | commands for the agents held by replica `<id>`: one entry per kind, run and chunk of nodes, naming the command stored once in `:commands` (consumer group `dispatch`; a dead replica's entries are claimed by a survivor) |
 * | `<p>:run:{<id>}:commands`        | hash   | scheduler | dispatch call id → the DownloadCommand or RunCommand it sends (protobuf; a RunCommand holds the input, sensitive values included), stored once per call for every replica, deleted once the call's replies are in or its wait ended (and expires) |
 * | `<p>:run:{<id>}:replies`         | stream | scheduler | each replica's aggregated outcome of a dispatch entry of the run (nodes done, nodes failed or unreachable); expires |
 * | `<p>:run:{<id>}:finished`        | stream | scheduler | nodes whose final result reached a replica that does not coordinate the run, once stored: the coordinator reads them to move its batches on; expires |
 * | `<p>:run:{<id>}`                 | string | results   | the Run record as proto JSON                    |
 * | `<p>:run:{<id>}:results`         | hash   | results   | host → NodeResult as proto JSON                 |
 * | `<p>:run:{<id>}:brief`           | hash   | results   | host → that node's small result fields (state, exit code, times...; encoding: services/results/run-scripts.ts), beside `:results` so a slim read never reads output |
 * | `<p>:run:{<id>}:events`          | stream | results   | the run's event log, one RunEvent per entry; a node_result event holds no output (stdout, stderr, value): readers take it from `:results` (see `:resultevent`) |
 * | `<p>:run:{<id>}:final`           | set    | results   | hosts of the run whose result is final (its size says when the run is done) |
 * | `<p>:run:{<id>}:header`          | hash   | results   | the run's constant-size facts: task, caller, nodes (the node count), state (RunState number, kept with the record's); read instead of the record when a result is recorded (services/results/run-header.ts) |
 * | `<p>:run:{<id>}:resultevent`     | hash   | results   | host → id of the event that recorded the node's current result: that event gets the result's output when it is read (events hold no output) |
 * | `<p>:runs`                       | zset   | results   | task ids scored by creation time (ms)           |
 * | `<p>:runs:task:<task>`           | zset   | results   | task ids of one task's runs, scored by creation time (ms) |
 * | `<p>:runs:caller:<caller>`       | zset   | results   | task ids of one caller's runs, scored by creation time (ms) |
 * | `<p>:request:<json [caller, id]>` | string | scheduler | the task id a RunTask request id started (idempotency); expires |
 * | `<p>:run:{<id>}:orch`            | hash   | scheduler | the run's orchestration state while it is coordinated: phase, epoch, coordinator, batch, batches, batch_size, sleep_ms, sleep_until, gate_deadline, cancel, sending (services/scheduler/run-state.ts); deleted when the run ends |
 * | `<p>:run:{<id>}:lease`           | string | scheduler | the coordinator lease: the coordinating replica's id, expiring unless renewed |
 * | `<p>:run:{<id>}:plan`            | string | scheduler | JSON array of the nodes the run command goes to, in batch order (batches are recomputed from it and `batch_size`) |
 * | `<p>:run:{<id>}:command`         | string | scheduler | the run command (RunCommand proto JSON, sensitive input included) a coordinator taking over re-sends; deleted when the run ends |
 * | `<p>:orch:active`                | zset   | scheduler | task ids of runs with orchestration state, scored by creation time (ms): what a scheduler scans for runs whose coordinator is gone |
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  /** Hash describing one node. */
  node(identity: string): string {
    return `${this.prefix}:node:${identity}`;
  }

  /** Sorted set of all known nodes by last-seen time. */
  nodes(): string {
    return `${this.prefix}:nodes`;
  }

  /** Bitmap over node ids of every known node. */
  allNodesBitmap(): string {
    return `${this.prefix}:bits:allnodes`;
  }

  /** Sorted set of the identities of connected agents, scored by last-seen ms. */
  online(): string {
    return `${this.prefix}:online`;
  }

  /** Bitmap over node ids of the members of `online()`. */
  onlineBitmap(): string {
    return `${this.prefix}:bits:onlineset`;
  }

  /** Set of the identities whose scalar fact at `path` has the (lowercased) text `value`. */
  factValue(path: string, value: string): string {
    // JSON keeps the key unambiguous whatever characters the path and the value hold.
    return `${this.prefix}:fact:${JSON.stringify([path, value])}`;
  }

  /** Sorted set of the identities whose fact at `path` is numeric, scored by its value. */
  factNumber(path: string): string {
    return `${this.prefix}:factnum:${path}`;
  }

  /** Set of the identities with a Puppet class (name lowercased by the caller). */
  nodeClass(lowercasedClass: string): string {
    return `${this.prefix}:class:${lowercasedClass}`;
  }

  /** Set of the identities offering an agent. */
  nodeAgent(agent: string): string {
    return `${this.prefix}:agent:${agent}`;
  }

  /** Set of every lowercased class name indexed. */
  classNames(): string {
    return `${this.prefix}:classnames`;
  }

  /** Set of every agent name indexed. */
  agentNames(): string {
    return `${this.prefix}:agentnames`;
  }

  /** Hash identity → dense node id (the bit a node has in every bitmap). */
  nodeIds(): string {
    return `${this.prefix}:nodeids`;
  }

  /** List id → identity, append-only. */
  nodeNames(): string {
    return `${this.prefix}:nodenames`;
  }

  /** The bitmap over node ids mirroring a membership set built by this class (`factValue()`, `nodeClass()`, `nodeAgent()`). */
  bitmapOf(setKey: string): string {
    // `<p>:bits:` + the set key without its prefix: no other key starts with `<p>:bits:`, so
    // the mapping cannot collide whatever a class or fact value contains. The index's Lua
    // scripts apply the same rule to set keys they read from Redis
    // (services/scheduler/upsert-nodes-7plus.lua, discovery-query-5plus.lua).
    return `${this.prefix}:bits:${setKey.slice(this.prefix.length + 1)}`;
  }

  /** Hash of the membership set keys (`factValue`, `nodeClass`, `nodeAgent`) now held as bitmaps (`bitmapOf`). */
  bitmappedSets(): string {
    return `${this.prefix}:bitmapped`;
  }

  /**
   * Sorted set of the `factValue` set keys of the distinct values of the numeric fact at `path`,
   * scored by the number. services/scheduler/upsert-nodes-7plus.lua applies the same rule to the
   * `factNumber` keys it reads from a node's stored index.
   */
  factNumberValues(path: string): string {
    return `${this.prefix}:factvals:${path}`;
  }

  /** A discovery query's temporary key. */
  discoveryTemp(id: string): string {
    return `${this.prefix}:tmp:${id}`;
  }

  /** Bitmap over node ids of the nodes connected to scheduler replica `replicaId`. */
  ownerBitmap(replicaId: string): string {
    return `${this.prefix}:bits:owner:${replicaId}`;
  }

  /** Sorted set replica id → lease end (ms, Redis clock). */
  replicaLeases(): string {
    return `${this.prefix}:{replicas}:leases`;
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
