import type { RedisClient as Redis } from '../../lib/redis-client';
import { DownloadCommand, RunCommand } from '../../gen/baton/v1/agent_gateway_service';
import { LuaScript } from '../../lib/lua-script';
import { LocalDispatcher } from './dispatcher';
import {
  decodeEntry,
  DISPATCH_GROUP,
  MAX_DISPATCH_HOPS,
  postEntries,
  postReply,
  routeNodes,
  unreachable,
  type DispatchEntry,
  type DispatchFailure,
  type ReplicaDispatchOptions,
} from './dispatch-stream';
import { distributeFiles, type DownloadFailure } from './download-gate';
import { errorText } from './error-text';
import { joinChunks } from './node-bitmap';
import type { ReplicaLeaseEnd } from './replica-lease';

/** Entries read per XREADGROUP / XAUTOCLAIM. */
const READ_COUNT = 100;
/** Longest XREADGROUP BLOCK, in ms: how soon the loop notices a stop or a lost lease. */
const READ_BLOCK_MS = 1_000;
/** Pause after a failed read before the next, in ms. */
const READ_RETRY_MS = 500;
/** How long a cancelled run is remembered, in ms: a run command of it arriving later is not sent. */
const CANCELLED_RUN_MEMORY_MS = 60 * 60 * 1000;
/** Commands kept decoded, by call (a run's download and batches reuse them per entry chunk). */
const COMMAND_CACHE_SIZE = 64;
/** Nodes marked offline per REAP_SCRIPT call. */
const REAP_BATCH = 500;
/** How often a survivor looks whether the nodes of a dead replica's entry have reconnected, in ms. */
const RECONNECT_POLL_MS = 200;
/** The least time a survivor waits before reading a download's deadline as passed, in ms. */
const MIN_DOWNLOAD_MS = 1_000;

/** What Redis answers about a stream, or its consumer group, that no longer exists (XGROUP CREATE without MKSTREAM, XAUTOCLAIM, XREADGROUP). */
const STREAM_GONE = /NOGROUP|requires the key to exist/;

/** Marks offline the nodes a dead replica still held and takes them out of its owner bitmap. */
const REAP_SCRIPT = LuaScript.fromFile(__dirname, 'reap-replica-nodes-4plus');

/** An entry left pending because this replica stops while some of its nodes reconnect elsewhere. */
class LeftForSurvivor extends Error {
  constructor(readonly nodes: number) {
    super('the scheduler stops while nodes of a dispatch entry reconnect; the entry is left for a survivor');
  }
}

/** `work`, with its failure also observed where nobody awaits it (the entry failed for another reason first). */
function handled<T>(work: Promise<T>): Promise<T> {
  work.catch(() => undefined);
  return work;
}

/** A stream entry as XREADGROUP and XAUTOCLAIM answer it (a deleted entry is null). */
type RawEntry = [string, string[]] | null;

/**
 * The replica side of cross-replica dispatch: reads this replica's dispatch stream (consumer
 * group DISPATCH_GROUP, XREADGROUP BLOCK), sends each entry's command to the nodes it holds,
 * forwards nodes that moved to another live replica (once), and posts one aggregated reply per
 * entry to the run's reply stream. It also takes over the streams of replicas whose lease ended
 * (XAUTOCLAIM of what they had read, XREADGROUP of what they had not), then marks the nodes they
 * still held offline and forgets them.
 */
export class DispatchConsumer {
  private running = false;
  private reader: Redis | undefined;
  private loop: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly commands = new Map<string, Buffer | null>();
  private readonly cancelledRuns = new Map<string, number>();
  private readonly local: LocalDispatcher;
  /** Entries being handled, `<stream>/<id>`: one claimed again while still in hand is not handled twice. */
  private readonly handling = new Set<string>();
  /** Dead replicas being taken over now. */
  private readonly takingOver = new Set<string>();

  constructor(private readonly options: ReplicaDispatchOptions) {
    this.local = new LocalDispatcher(options.registry);
  }

  /** Starts reading this replica's stream. */
  start(): void {
    if (this.running) return;
    this.running = true;
    const reader = this.options.redis.duplicate();
    reader.on('error', (err: Error) => this.options.log.debug({ err: err.message }, 'dispatch reader connection problem'));
    this.reader = reader;
    this.loop = this.readLoop(reader);
  }

  /** Stops reading and waits for the entries being handled. */
  async stop(): Promise<void> {
    this.running = false;
    this.reader?.disconnect();
    await this.loop;
    await Promise.all([...this.inFlight]);
  }

  /** After each lease renewal: takes over the streams of replicas whose lease ended. */
  onPeers(peers: ReplicaLeaseEnd[], nowMs: number): void {
    if (!this.running || !this.options.lease.held) return;
    for (const peer of peers) {
      if (peer.endsMs >= nowMs || peer.id === this.options.lease.id || this.takingOver.has(peer.id)) continue;
      this.takingOver.add(peer.id);
      this.track(
        this.takeOver(peer.id)
          .catch((err: unknown) =>
            this.options.log.warn({ replica: peer.id, err: errorText(err) }, 'could not take over a dead replica; the next renewal tries again'),
          )
          .finally(() => this.takingOver.delete(peer.id)),
      );
    }
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  private async readLoop(reader: Redis): Promise<void> {
    const { lease, keys, log } = this.options;
    let readyFor = '';
    while (this.running) {
      const id = lease.id;
      if (!lease.held || id === '') {
        await new Promise((resolve) => setTimeout(resolve, READ_BLOCK_MS / 4));
        continue;
      }
      const stream = keys.replicaDispatch(id);
      try {
        if (readyFor !== id) {
          await this.ensureGroup(stream);
          readyFor = id;
        }
        const read = (await reader.xreadgroup('GROUP', DISPATCH_GROUP, id, 'COUNT', READ_COUNT, 'BLOCK', READ_BLOCK_MS, 'STREAMS', stream, '>')) as Array<
          [string, RawEntry[]]
        > | null;
        for (const [, entries] of read ?? []) this.handleAll(stream, entries);
      } catch (err) {
        if (!this.running) return;
        if (errorText(err).includes('NOGROUP')) readyFor = '';
        else log.warn({ err: errorText(err) }, 'could not read the dispatch stream; trying again');
        await new Promise((resolve) => setTimeout(resolve, READ_RETRY_MS));
      }
    }
  }

  private async ensureGroup(stream: string): Promise<void> {
    try {
      await this.options.redis.xgroup('CREATE', stream, DISPATCH_GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!errorText(err).includes('BUSYGROUP')) throw err;
    }
  }

  private handleAll(stream: string, entries: RawEntry[]): void {
    for (const raw of entries) {
      if (!raw) continue;
      const [id, fields] = raw;
      const key = `${stream}/${id}`;
      if (this.handling.has(key)) continue;
      this.handling.add(key);
      this.track(this.handle(stream, id, fields).finally(() => this.handling.delete(key)));
    }
  }

  /**
   * A dead replica's stream: what it had read and not acknowledged (XAUTOCLAIM), then what it
   * never read; then the nodes it still held go offline and it is forgotten, once its stream is
   * empty.
   */
  private async takeOver(dead: string): Promise<void> {
    const { redis, keys, lease, log, index } = this.options;
    const stream = keys.replicaDispatch(dead);
    const me = lease.id;
    let taken = 0;
    try {
      taken = await this.claimAll(stream, me);
    } catch (err) {
      // Every survivor takes a dead replica over at its own renewal: the first to empty the
      // stream deletes it, and the others' reads then find no stream or no group. That is the
      // stream taken over, not a failure.
      if (!STREAM_GONE.test(errorText(err))) throw err;
    }
    const offline = await this.reapNodes(dead);
    if (taken > 0 || offline > 0) log.info({ replica: dead, entries: taken, nodesOffline: offline }, 'took over a dead replica');
    // Forgotten only once nothing of it is left: a later renewal finishes what this one could not.
    if ((await redis.xlen(stream)) > 0) return;
    if (!(await lease.forget(dead))) return;
    await redis.del(stream);
    const chunks = await index.chunkCount();
    await Promise.all(Array.from({ length: chunks }, (_, c) => redis.del(keys.ownerBitmap(c, dead))));
  }

  /**
   * Claims every entry of a dead replica's `stream` for consumer `me` and handles it: those it
   * had read and not acknowledged (XAUTOCLAIM), then those it never read; returns how many.
   */
  private async claimAll(stream: string, me: string): Promise<number> {
    const { redis } = this.options;
    if ((await redis.exists(stream)) === 0) return 0;
    // Without MKSTREAM: a stream another survivor deleted meanwhile is not created again.
    await redis.xgroup('CREATE', stream, DISPATCH_GROUP, '0').catch((err: unknown) => {
      if (!errorText(err).includes('BUSYGROUP')) throw err;
    });
    let taken = 0;
    let cursor = '0-0';
    do {
      const reply = (await redis.xautoclaim(stream, DISPATCH_GROUP, me, 0, cursor, 'COUNT', READ_COUNT)) as [string, RawEntry[]];
      cursor = reply[0];
      taken += reply[1].filter(Boolean).length;
      this.handleAll(stream, reply[1]);
    } while (cursor !== '0-0');
    for (;;) {
      const read = (await redis.xreadgroup('GROUP', DISPATCH_GROUP, me, 'COUNT', READ_COUNT, 'STREAMS', stream, '>')) as Array<[string, RawEntry[]]> | null;
      const entries = read?.[0]?.[1] ?? [];
      if (entries.length === 0) break;
      taken += entries.length;
      this.handleAll(stream, entries);
    }
    return taken;
  }

  /** Marks offline the nodes `dead` still holds, index chunk by index chunk; returns how many. */
  private async reapNodes(dead: string): Promise<number> {
    const { redis, keys, index } = this.options;
    let offline = 0;
    const chunks = await index.chunkCount();
    for (let c = 0; c < chunks; c++) {
      const bits = await redis.getBuffer(keys.ownerBitmap(c, dead));
      if (!bits || bits.length === 0) continue;
      const parts: Array<Buffer | null> = [];
      parts[c] = bits;
      const names = index.names.namesOf(joinChunks(parts, index.names.count));
      for (let i = 0; i < names.length; i += REAP_BATCH) {
        const batch = names.slice(i, i + REAP_BATCH);
        const scriptKeys = [keys.online(c), keys.nodeOffsets(c), keys.onlineBitmap(c), keys.ownerBitmap(c, dead), ...batch.map((n) => keys.node(c, n))];
        offline += Number(await REAP_SCRIPT.run(redis, scriptKeys, [dead, ...batch]));
      }
    }
    return offline;
  }

  /** The stored command of a call (cached); null when it is gone from Redis. */
  private async command(entry: DispatchEntry): Promise<Buffer | null> {
    const cached = this.commands.get(entry.call);
    if (cached !== undefined) return cached;
    const stored = await this.options.redis.hgetBuffer(this.options.keys.runCommands(entry.taskId), entry.call);
    this.commands.set(entry.call, stored);
    for (const old of this.commands.keys()) {
      if (this.commands.size <= COMMAND_CACHE_SIZE) break;
      this.commands.delete(old);
    }
    return stored;
  }

  /** One entry: the nodes held here get the command, moved ones are forwarded, one reply, then the entry is acknowledged and deleted. */
  private async handle(stream: string, id: string, fields: string[]): Promise<void> {
    const { redis, keys, registry, log } = this.options;
    const entry = decodeEntry(fields);
    try {
      if (!entry) {
        log.warn({ stream, id }, 'dispatch entry this scheduler cannot read; dropped');
      } else {
        let here: string[] = [];
        const moved: string[] = [];
        for (const node of entry.nodes) (registry.get(node)?.ready ? here : moved).push(node);
        // The nodes held here get the command at once, whatever the others wait for.
        const applied = [handled(this.apply(entry, here))];
        const failed = await this.follow(entry, moved, here, applied);
        let local = (await Promise.all(applied)).flat();
        // A node whose session here ended before its agent answered the download (the rebalancer
        // sent it to another replica, its connection broke) is followed where it reconnects, as
        // the nodes that had moved before the entry was read are, rather than failing the gate.
        const gone = local.filter((f) => f.disconnected).map((f) => f.node);
        if (gone.length > 0) {
          const goneSet = new Set(gone);
          local = local.filter((f) => !f.disconnected);
          here = here.filter((n) => !goneSet.has(n));
          const again: Array<Promise<DownloadFailure[]>> = [];
          failed.push(...(await this.follow(entry, gone, here, again)));
          local.push(...(await Promise.all(again)).flat());
        }
        const failedHere = new Set(local.map((f) => f.node));
        await postReply(redis, keys, entry.taskId, {
          call: entry.call,
          entry: `${stream}/${id}`,
          ok: here.filter((n) => !failedHere.has(n)),
          failed: [...failed, ...local],
        });
      }
      await redis.pipeline().xack(stream, DISPATCH_GROUP, id).xdel(stream, id).exec();
    } catch (err) {
      if (err instanceof LeftForSurvivor) {
        log.info({ stream, id, taskId: entry?.taskId, nodes: err.nodes }, err.message);
        return;
      }
      // Left pending: a survivor claims it if this replica dies; otherwise the coordinator
      // reports the nodes as not answering once its wait ends.
      log.warn({ stream, id, taskId: entry?.taskId, err: errorText(err) }, 'could not handle a dispatch entry');
    }
  }

  /**
   * Follows `nodes`, not held here, to where they are: forwarded to the live replica holding
   * each (one hop more), and those connected nowhere waited for up to a lease period (within a
   * download's deadline). Nodes back here are added to `here` and given the command, its work
   * pushed to `applied`. Returns the nodes not reached; throws LeftForSurvivor when this replica
   * stops while some are still awaited.
   */
  private async follow(entry: DispatchEntry, nodes: string[], here: string[], applied: Array<Promise<DownloadFailure[]>>): Promise<DispatchFailure[]> {
    if (nodes.length === 0) return [];
    if (entry.hops >= MAX_DISPATCH_HOPS) return nodes.map((n) => unreachable(n));
    const { registry, lease } = this.options;
    let nowhere = await this.forward(entry, nodes);
    // Nodes that left the replica the entry was posted to and are connected nowhere yet:
    // their agents are reconnecting (that replica died, or drains, or the stream broke),
    // most within a moment. They get a lease period (within the entry's own deadline) to
    // show up before they are reported unreachable, or a run would record a node that was
    // back a moment later as not reached (NO_RESPONSE, its task never started).
    const until = Math.min(Date.now() + lease.leaseMs, entry.kind === 'download' ? entry.deadlineMs : Infinity);
    while (nowhere.length > 0 && this.running && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_POLL_MS));
      const back: string[] = [];
      const still: string[] = [];
      // One pass: a dead replica's agents come back by the thousand, and a lookup in `back` per
      // node still awaited would be quadratic on the event loop.
      for (const n of nowhere) (registry.get(n)?.ready ? back : still).push(n);
      if (back.length > 0) {
        here.push(...back);
        applied.push(handled(this.apply(entry, back)));
      }
      nowhere = await this.forward(entry, still);
    }
    if (nowhere.length > 0 && !this.running) {
      // This replica stops meanwhile: the entry is left pending, and the survivor that
      // claims it once this replica's lease has ended waits for the nodes in turn.
      await Promise.allSettled(applied);
      throw new LeftForSurvivor(nowhere.length);
    }
    return nowhere.map((n) => unreachable(n));
  }

  /** Forwards the entry's `nodes` to the live replicas holding them (one hop more); returns those no live replica holds. */
  private async forward(entry: DispatchEntry, nodes: string[]): Promise<string[]> {
    if (nodes.length === 0) return [];
    const { redis, keys, index, lease } = this.options;
    const routes = await routeNodes(index, await lease.live(), lease.id, nodes);
    if (routes.byReplica.size > 0) await postEntries(redis, keys, { ...entry, hops: entry.hops + 1 }, routes.byReplica);
    return routes.nowhere;
  }

  /** Does what the entry asks to the nodes held here; returns those that failed or were not reached. */
  private async apply(entry: DispatchEntry, nodes: string[]): Promise<DownloadFailure[]> {
    if (nodes.length === 0) return [];
    if (entry.kind === 'cancel') {
      this.rememberCancelled(entry.taskId);
      const reached = new Set(await this.local.cancel(nodes, entry.taskId));
      return nodes.filter((n) => !reached.has(n)).map((n) => unreachable(n, 'the node disconnected before the cancel could be sent'));
    }
    const stored = await this.command(entry);
    if (!stored) return nodes.map((n) => unreachable(n, 'the command was no longer stored when the scheduler holding the node read it'));
    if (entry.kind === 'download') {
      const timeoutMs = Math.max(MIN_DOWNLOAD_MS, entry.deadlineMs - Date.now());
      return distributeFiles(this.options.registry, nodes, DownloadCommand.decode(stored), timeoutMs, entry.trace);
    }
    // A run command that a cancel of its run overtook (posted before it, read first) is not sent.
    if (this.cancelledRuns.has(entry.taskId)) return nodes.map((n) => unreachable(n, 'the run was cancelled before its command reached the node'));
    const lost = await this.local.run(nodes, RunCommand.decode(stored), entry.trace);
    return lost.map((n) => unreachable(n, 'the node disconnected before the run command could be sent'));
  }

  private rememberCancelled(taskId: string, nowMs = Date.now()): void {
    for (const [id, atMs] of this.cancelledRuns) {
      if (nowMs - atMs <= CANCELLED_RUN_MEMORY_MS) break;
      this.cancelledRuns.delete(id);
    }
    this.cancelledRuns.delete(taskId);
    this.cancelledRuns.set(taskId, nowMs);
  }
}
