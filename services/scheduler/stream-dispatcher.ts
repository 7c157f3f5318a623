import { randomUUID } from 'node:crypto';
import { DownloadCommand, RunCommand } from '../../gen/baton/v1/agent_gateway_service';
import type { TraceContext } from './agent-session';
import { LocalDispatcher, type Dispatcher } from './dispatcher';
import {
  awaitReplies,
  DISPATCH_KEYS_TTL_MS,
  postEntries,
  routeNodes,
  unreachable,
  type DispatchFailure,
  type DispatchKind,
  type ReplicaDispatchOptions,
} from './dispatch-stream';
import { distributeFiles, type DownloadFailure } from './download-gate';
import { errorText } from './error-text';

/** Time the coordinator waits for replies past a download's own timeout, in ms (Redis round trips, a busy replica). */
export const REPLY_GRACE_MS = 2_000;

/** How often nodes being waited for are looked for (connected here, or to a live replica), in ms. */
const RECONNECT_POLL_MS = 200;

/** Nodes a command reached, and those it failed on. */
interface Outcome {
  ok: string[];
  failed: DispatchFailure[];
}

/** Sorted by node, as the download gate reports. */
function byNode(a: { node: string }, b: { node: string }): number {
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
}

/**
 * The Dispatcher of a scheduler replica: nodes whose stream this replica holds are reached
 * directly (as LocalDispatcher does); the others through the stream of the replica that holds
 * each (owner bitmaps), with the command stored once per call and every replica's aggregated
 * outcome read from the run's reply stream (dispatch-stream.ts). A node no live replica holds
 * is waited for up to a lease period when it was heard from lately (its agent is on its way to
 * another replica), else it is NO_RESPONSE at once. With one replica nothing goes through Redis
 * beyond a lease read.
 */
export class StreamDispatcher implements Dispatcher {
  private readonly local: LocalDispatcher;

  constructor(private readonly options: ReplicaDispatchOptions) {
    this.local = new LocalDispatcher(options.registry);
  }

  /**
   * How long a run command or a cancel waits for other replicas' replies, in ms: a replica that
   * died holding the entry has it claimed by a survivor once its lease ended (a lease, plus a
   * renewal period for a survivor to notice), then a grace.
   */
  get sendWaitMs(): number {
    return 2 * this.options.lease.leaseMs + REPLY_GRACE_MS;
  }

  async download(nodes: string[], command: DownloadCommand, timeoutMs: number, traceContext: TraceContext): Promise<DownloadFailure[]> {
    const deadlineMs = Date.now() + timeoutMs;
    const { here, elsewhere } = this.split(nodes);
    const sendHere = async (back: string[]) => {
      const failed = await distributeFiles(this.options.registry, back, command, Math.max(0, deadlineMs - Date.now()), traceContext);
      const failedSet = new Set(failed.map((f) => f.node));
      return { ok: back.filter((n) => !failedSet.has(n)), failed };
    };
    const viaReplicas = (to: string[]) =>
      this.viaReplicas(
        'download',
        command.taskId,
        DownloadCommand.encode(command).finish(),
        to,
        deadlineMs,
        deadlineMs + REPLY_GRACE_MS,
        traceContext,
        `no response to the download command within ${Math.round(timeoutMs / 1000)} s`,
        sendHere,
      );
    const [local, remote] = await Promise.all([
      distributeFiles(this.options.registry, here, command, timeoutMs, traceContext).then(async (failed) => {
        // A node whose session here ended before its agent answered (the rebalancer sent it to
        // another replica, its connection broke) is followed where it reconnects, as a node held
        // nowhere is, rather than failing the gate.
        const moved = failed.filter((f) => f.disconnected).map((f) => f.node);
        if (moved.length === 0) return failed;
        return [...failed.filter((f) => !f.disconnected), ...(await viaReplicas(moved)).failed];
      }),
      viaReplicas(elsewhere),
    ]);
    return [...local, ...remote.failed].sort(byNode);
  }

  async run(nodes: string[], command: RunCommand, traceContext: TraceContext): Promise<string[]> {
    const { here, elsewhere } = this.split(nodes);
    // A session that closed meanwhile may have its node reconnected to another replica already.
    const lost = await this.local.run(here, command, traceContext);
    const until = Date.now() + this.sendWaitMs;
    const sendHere = async (back: string[]) => {
      const missed = new Set(await this.local.run(back, command, traceContext));
      return { ok: back.filter((n) => !missed.has(n)), failed: [...missed].map((n) => unreachable(n)) };
    };
    const remote = await this.viaReplicas(
      'run',
      command.taskId,
      RunCommand.encode(command).finish(),
      [...elsewhere, ...lost],
      until,
      until,
      traceContext,
      'no answer from the scheduler holding the node',
      sendHere,
    );
    return remote.failed.map((f) => f.node);
  }

  async cancel(nodes: string[], taskId: string): Promise<string[]> {
    const { here, elsewhere } = this.split(nodes);
    const reached = await this.local.cancel(here, taskId);
    const reachedSet = new Set(reached);
    const missed = here.filter((n) => !reachedSet.has(n));
    const until = Date.now() + this.sendWaitMs;
    const sendHere = async (back: string[]) => {
      const got = new Set(await this.local.cancel(back, taskId));
      return { ok: back.filter((n) => got.has(n)), failed: back.filter((n) => !got.has(n)).map((n) => unreachable(n)) };
    };
    const remote = await this.viaReplicas(
      'cancel',
      taskId,
      undefined,
      [...elsewhere, ...missed],
      until,
      until,
      {},
      'no answer from the scheduler holding the node',
      sendHere,
    );
    return [...reached, ...remote.ok].sort();
  }

  /** Nodes with a ready session here, and the rest. */
  private split(nodes: string[]): { here: string[]; elsewhere: string[] } {
    const here: string[] = [];
    const elsewhere: string[] = [];
    for (const node of nodes) (this.options.registry.get(node)?.ready ? here : elsewhere).push(node);
    return { here, elsewhere };
  }

  /**
   * Sends `kind` to `nodes` through the replicas holding them and waits for their replies until
   * `waitUntilMs`; a node without a reply by then fails with `missingDetail`. A node no live
   * replica holds that was heard from lately (its replica died or drains, or its stream broke)
   * is waited for, up to a lease period within `deadlineMs`, as a replica taking over a dead
   * one's entries does: it gets the command where it reconnects (here through `sendHere`), so a
   * run started just after a replica's lease ended does not fail the agents still on their way
   * to a survivor.
   */
  private async viaReplicas(
    kind: DispatchKind,
    taskId: string,
    command: Uint8Array | undefined,
    nodes: string[],
    deadlineMs: number,
    waitUntilMs: number,
    trace: TraceContext,
    missingDetail: string,
    sendHere: (nodes: string[]) => Promise<Outcome>,
  ): Promise<Outcome> {
    if (nodes.length === 0) return { ok: [], failed: [] };
    const { index, lease } = this.options;
    const routes = await routeNodes(index, await lease.live(), lease.id, nodes);
    const send = (byReplica: Map<string, string[]>) => this.postAndAwait(kind, taskId, command, byReplica, deadlineMs, waitUntilMs, trace, missingDetail);
    const parts = await Promise.all([
      send(routes.byReplica),
      this.reconnecting(routes.nowhere, Math.min(Date.now() + lease.leaseMs, deadlineMs), sendHere, send),
    ]);
    return { ok: parts.flatMap((p) => p.ok), failed: parts.flatMap((p) => p.failed) };
  }

  /**
   * Waits until `untilMs` for those of `nodes` heard from lately to connect here or to a live
   * replica, sending them the command as they do; the others, and those not back by then, fail
   * as not connected to any scheduler.
   */
  private async reconnecting(
    nodes: string[],
    untilMs: number,
    sendHere: (nodes: string[]) => Promise<Outcome>,
    sendElsewhere: (byReplica: Map<string, string[]>) => Promise<Outcome>,
  ): Promise<Outcome> {
    if (nodes.length === 0) return { ok: [], failed: [] };
    const { index, lease, registry } = this.options;
    const presence = await index.presence(nodes);
    const freshSince = index.freshSinceMs();
    const gone: DispatchFailure[] = [];
    let waiting: string[] = [];
    for (const n of nodes) {
      if ((presence.get(n)?.lastSeenMs ?? 0) >= freshSince) waiting.push(n);
      else gone.push(unreachable(n));
    }
    const parts: Array<Promise<Outcome>> = [];
    while (waiting.length > 0 && Date.now() + RECONNECT_POLL_MS <= untilMs) {
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_POLL_MS));
      const back = waiting.filter((n) => registry.get(n)?.ready);
      if (back.length > 0) parts.push(sendHere(back));
      const backSet = new Set(back);
      const routes = await routeNodes(
        index,
        await lease.live(),
        lease.id,
        waiting.filter((n) => !backSet.has(n)),
      );
      if (routes.byReplica.size > 0) parts.push(sendElsewhere(routes.byReplica));
      waiting = routes.nowhere;
    }
    const got = await Promise.all(parts);
    return { ok: got.flatMap((g) => g.ok), failed: [...gone, ...got.flatMap((g) => g.failed), ...waiting.map((n) => unreachable(n))] };
  }

  /** Posts `kind` to each replica's stream for its nodes and waits for their replies until `waitUntilMs`. */
  private async postAndAwait(
    kind: DispatchKind,
    taskId: string,
    command: Uint8Array | undefined,
    byReplica: Map<string, string[]>,
    deadlineMs: number,
    waitUntilMs: number,
    trace: TraceContext,
    missingDetail: string,
  ): Promise<Outcome> {
    if (byReplica.size === 0) return { ok: [], failed: [] };
    const { redis, keys, log } = this.options;
    const call = randomUUID();
    if (command) {
      const stored = keys.runCommands(taskId);
      const replies = (await redis.pipeline().hset(stored, call, Buffer.from(command)).pexpire(stored, DISPATCH_KEYS_TTL_MS).exec()) ?? [];
      const err = replies.find(([e]) => e)?.[0];
      if (err) throw err;
    }
    let got: Awaited<ReturnType<typeof awaitReplies>>;
    try {
      await postEntries(redis, keys, { kind, taskId, call, deadlineMs, trace, hops: 0 }, byReplica);
      const pending = new Set([...byReplica.values()].flat());
      log.debug({ taskId, kind, replicas: byReplica.size, nodes: pending.size }, 'dispatch posted to other replicas');
      got = await awaitReplies(redis, keys, taskId, call, pending, waitUntilMs, log);
    } finally {
      // A run command holds the task's input, sensitive values in clear: it stays in Redis only
      // while the call waits for its replies (an entry read later reports its nodes unreached).
      if (command)
        await redis
          .hdel(keys.runCommands(taskId), call)
          .catch((err: unknown) => log.warn({ taskId, err: errorText(err) }, 'could not delete a dispatched command; it expires'));
    }
    if (got.missing.length > 0) log.warn({ taskId, kind, nodes: got.missing.length }, 'no reply from the replica holding some nodes');
    return { ok: got.ok, failed: [...got.failed, ...got.missing.map((n) => unreachable(n, missingDetail))] };
  }
}
