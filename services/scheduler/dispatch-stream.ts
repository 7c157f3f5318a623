import { execPerKey, throwFirstError, type RedisClient as Redis } from '../../lib/redis-client';
import { NodeState } from '../../gen/baton/v1/run';
import type { Logger } from '../../lib/logger';
import { forEachSliced } from '../../lib/time-slice';
import type { RedisKeys } from '../../lib/redis';
import type { AgentSession, TraceContext } from './agent-session';
import type { DownloadFailure } from './download-gate';
import { errorText } from './error-text';
import { hasBit, joinChunks } from './node-bitmap';
import type { NodeIndex } from './node-index';
import type { AgentRegistry } from './agent-registry';
import type { ReplicaLease } from './replica-lease';

/**
 * What travels between scheduler replicas when a run's nodes are held by several of them: the
 * coordinating replica stores a command once per call (`<p>:run:{id}:commands`), posts one
 * dispatch entry per replica and chunk of nodes to that replica's stream
 * (`<p>:replica:{r}:dispatch`, consumer group DISPATCH_GROUP), and reads each replica's
 * aggregated outcome from the run's reply stream (`<p>:run:{id}:replies`).
 */

/** The consumer group every replica reads its dispatch stream with (and survivors a dead replica's). */
export const DISPATCH_GROUP = 'dispatch';

/** Most nodes named by one dispatch entry: a 100,000-node run is 20 entries per replica, each well under a megabyte. */
export const DISPATCH_CHUNK_NODES = 5_000;

/** How long a run's stored commands and replies are kept, in ms: long enough for a survivor to claim a dead replica's entries. */
export const DISPATCH_KEYS_TTL_MS = 60 * 60 * 1000;

/** Forwards an entry may take after the replica it was posted to: a node that moved once more is reported unreachable. */
export const MAX_DISPATCH_HOPS = 1;

/** statusmsg of a node no live replica holds. */
export const NOT_CONNECTED_ANYWHERE = 'no response: the node is not connected to any scheduler';

/** What both sides of cross-replica dispatch work with. */
export interface ReplicaDispatchOptions {
  redis: Redis;
  keys: RedisKeys;
  index: NodeIndex;
  /** This replica's sessions. */
  registry: AgentRegistry<AgentSession>;
  /** This replica's lease: its id, and which replicas are live. */
  lease: ReplicaLease;
  log: Logger;
}

/** Kinds of dispatch: the download gate, the run command, a cancel. */
export type DispatchKind = 'download' | 'run' | 'cancel';

/** One dispatch entry, as posted to a replica's stream. */
export interface DispatchEntry {
  kind: DispatchKind;
  taskId: string;
  /** The call's id: the field of its command in the run's commands hash, and what its replies carry. */
  call: string;
  nodes: string[];
  /** Downloads: when the coordinator stops waiting, ms since the epoch (its clock). */
  deadlineMs: number;
  trace: TraceContext;
  /** Times the entry was forwarded to the replica a node moved to. */
  hops: number;
}

/** A node that did not do what an entry asked: failed (download only) or not reached. */
export interface DispatchFailure {
  node: string;
  state: DownloadFailure['state'];
  detail: string;
}

/** One replica's aggregated outcome of one dispatch entry. */
export interface DispatchReply {
  call: string;
  /** `<stream>/<entry id>`: a reply sent twice for one entry (claimed after a crash) is read once. */
  entry: string;
  /** Nodes that did what the entry asked (downloaded, were sent the run or the cancel). */
  ok: string[];
  failed: DispatchFailure[];
}

/** Flat field list of a stream entry → value of field `name`. */
function field(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/** Decodes an entry's `e` field; undefined for an entry this version cannot read (logged by the caller). */
export function decodeEntry(fields: string[]): DispatchEntry | undefined {
  const text = field(fields, 'e');
  if (text === undefined) return undefined;
  try {
    const e = JSON.parse(text) as DispatchEntry;
    if (typeof e.taskId !== 'string' || typeof e.call !== 'string' || !Array.isArray(e.nodes)) return undefined;
    return e;
  } catch {
    return undefined;
  }
}

/** Decodes a reply's `r` field. */
export function decodeReply(fields: string[]): DispatchReply | undefined {
  const text = field(fields, 'r');
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as DispatchReply;
  } catch {
    return undefined;
  }
}

/** A node's NO_RESPONSE as a dispatch failure. */
export function unreachable(node: string, detail = NOT_CONNECTED_ANYWHERE): DispatchFailure {
  return { node, state: NodeState.NODE_STATE_NO_RESPONSE, detail };
}

/** Which live replica holds each node, read from the owner bitmaps. */
export interface Routes {
  byReplica: Map<string, string[]>;
  /** Nodes no live replica (other than the excluded one) holds. */
  nowhere: string[];
}

/**
 * Finds the replica holding each of `nodes` among the live ones (lease not ended), other than
 * `exclude` (the caller, which asked its own sessions first), from their owner bitmaps.
 */
export async function routeNodes(index: NodeIndex, liveReplicas: string[], exclude: string, nodes: string[]): Promise<Routes> {
  const byReplica = new Map<string, string[]>();
  const replicas = liveReplicas.filter((r) => r !== exclude);
  if (nodes.length === 0 || replicas.length === 0) return { byReplica, nowhere: [...nodes] };
  const { redis, keys } = index.store;
  const chunks = await index.chunkCount();
  const count = index.names.count;
  // One GET per replica and chunk: each chunk's bitmaps are in its own Redis Cluster slot.
  const bitmaps = await Promise.all(
    replicas.map(async (r) => joinChunks(await Promise.all(Array.from({ length: chunks }, (_, c) => redis.getBuffer(keys.ownerBitmap(c, r)))), count)),
  );
  const nowhere: string[] = [];
  // In time slices: a run's every node, looked up by name, holds the event loop for long enough
  // at fleet size to delay the replica's lease renewals and its agents' messages.
  await forEachSliced(nodes, (node) => {
    const id = index.names.idOf(node);
    const at = id === undefined ? -1 : bitmaps.findIndex((b) => hasBit(b, id));
    if (at < 0) {
      nowhere.push(node);
      return;
    }
    let list = byReplica.get(replicas[at]);
    if (!list) byReplica.set(replicas[at], (list = []));
    list.push(node);
  });
  return { byReplica, nowhere };
}

/** Posts `entry` (split into chunks of DISPATCH_CHUNK_NODES) to each replica's stream, in one pipeline. */
export async function postEntries(redis: Redis, keys: RedisKeys, base: Omit<DispatchEntry, 'nodes'>, byReplica: Map<string, string[]>): Promise<void> {
  const posts: Array<{ stream: string; entry: DispatchEntry }> = [];
  for (const [replica, nodes] of byReplica) {
    for (let i = 0; i < nodes.length; i += DISPATCH_CHUNK_NODES) {
      posts.push({ stream: keys.replicaDispatch(replica), entry: { ...base, nodes: nodes.slice(i, i + DISPATCH_CHUNK_NODES) } });
    }
  }
  throwFirstError(
    await execPerKey(
      redis,
      posts,
      (p) => p.stream,
      (pipeline, p) => pipeline.xadd(p.stream, '*', 'e', JSON.stringify(p.entry)),
    ),
  );
}

/** Posts a reply to the run's reply stream (kept DISPATCH_KEYS_TTL_MS). */
export async function postReply(redis: Redis, keys: RedisKeys, taskId: string, reply: DispatchReply): Promise<void> {
  const stream = keys.runReplies(taskId);
  await redis.pipeline().xadd(stream, '*', 'r', JSON.stringify(reply)).pexpire(stream, DISPATCH_KEYS_TTL_MS).exec();
}

/** Longest single XREAD BLOCK while waiting for replies, in ms (the wait checks its deadline between reads). */
const REPLY_READ_BLOCK_MS = 1_000;

/**
 * Waits for the replies of call `call` of run `taskId` until every one of `pending` has an
 * outcome or `deadlineMs` (local clock) passes. Reads on a connection of its own (XREAD BLOCK
 * holds it). Resolves with the failures reported and the nodes still without an outcome.
 */
export async function awaitReplies(
  redis: Redis,
  keys: RedisKeys,
  taskId: string,
  call: string,
  pending: Set<string>,
  deadlineMs: number,
  log: Logger,
): Promise<{ ok: string[]; failed: DispatchFailure[]; missing: string[] }> {
  const ok: string[] = [];
  const failed: DispatchFailure[] = [];
  const seen = new Set<string>();
  const stream = keys.runReplies(taskId);
  const reader = redis.duplicate();
  reader.on('error', (err: Error) => log.debug({ err: err.message }, 'reply reader connection problem'));
  let last = '0-0';
  try {
    while (pending.size > 0) {
      const left = deadlineMs - Date.now();
      if (left <= 0) break;
      let read: Array<[string, Array<[string, string[]]>]> | null;
      try {
        read = await reader.xread('COUNT', 1000, 'BLOCK', Math.max(1, Math.min(REPLY_READ_BLOCK_MS, left)), 'STREAMS', stream, last);
      } catch (err) {
        log.warn({ taskId, err: errorText(err) }, 'could not read dispatch replies; trying again');
        await new Promise((resolve) => setTimeout(resolve, Math.min(REPLY_READ_BLOCK_MS, Math.max(1, left))));
        continue;
      }
      for (const [, entries] of read ?? []) {
        for (const [id, fields] of entries) {
          last = id;
          const reply = decodeReply(fields);
          if (!reply || reply.call !== call || seen.has(reply.entry)) continue;
          seen.add(reply.entry);
          for (const node of reply.ok) if (pending.delete(node)) ok.push(node);
          for (const f of reply.failed) if (pending.delete(f.node)) failed.push(f);
        }
      }
    }
  } finally {
    reader.disconnect();
  }
  return { ok, failed, missing: [...pending] };
}
