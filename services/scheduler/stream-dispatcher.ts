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

/** Sorted by node, as the download gate reports. */
function byNode(a: { node: string }, b: { node: string }): number {
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
}

/**
 * The Dispatcher of a scheduler replica: nodes whose stream this replica holds are reached
 * directly (as LocalDispatcher does); the others through the stream of the replica that holds
 * each (owner bitmaps), with the command stored once per call and every replica's aggregated
 * outcome read from the run's reply stream (dispatch-stream.ts). A node no live replica holds
 * is NO_RESPONSE at once. With one replica nothing goes through Redis beyond a lease read.
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
    const [local, remote] = await Promise.all([
      distributeFiles(this.options.registry, here, command, timeoutMs, traceContext),
      this.viaReplicas(
        'download',
        command.taskId,
        DownloadCommand.encode(command).finish(),
        elsewhere,
        deadlineMs,
        deadlineMs + REPLY_GRACE_MS,
        traceContext,
        `no response to the download command within ${Math.round(timeoutMs / 1000)} s`,
      ),
    ]);
    return [...local, ...remote.failed].sort(byNode);
  }

  async run(nodes: string[], command: RunCommand, traceContext: TraceContext): Promise<string[]> {
    const { here, elsewhere } = this.split(nodes);
    // A session that closed meanwhile may have its node reconnected to another replica already.
    const lost = await this.local.run(here, command, traceContext);
    const until = Date.now() + this.sendWaitMs;
    const remote = await this.viaReplicas(
      'run',
      command.taskId,
      RunCommand.encode(command).finish(),
      [...elsewhere, ...lost],
      until,
      until,
      traceContext,
      'no answer from the scheduler holding the node',
    );
    return remote.failed.map((f) => f.node);
  }

  async cancel(nodes: string[], taskId: string): Promise<string[]> {
    const { here, elsewhere } = this.split(nodes);
    const reached = await this.local.cancel(here, taskId);
    const reachedSet = new Set(reached);
    const missed = here.filter((n) => !reachedSet.has(n));
    const until = Date.now() + this.sendWaitMs;
    const remote = await this.viaReplicas(
      'cancel',
      taskId,
      undefined,
      [...elsewhere, ...missed],
      until,
      until,
      {},
      'no answer from the scheduler holding the node',
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
   * `waitUntilMs`; a node without a reply by then fails with `missingDetail`.
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
  ): Promise<{ ok: string[]; failed: DispatchFailure[] }> {
    if (nodes.length === 0) return { ok: [], failed: [] };
    const { redis, keys, index, lease, log } = this.options;
    const routes = await routeNodes(index, await lease.live(), lease.id, nodes);
    const failed: DispatchFailure[] = routes.nowhere.map((n) => unreachable(n));
    if (routes.byReplica.size === 0) return { ok: [], failed };
    const call = randomUUID();
    if (command) {
      const stored = keys.runCommands(taskId);
      const replies = (await redis.pipeline().hset(stored, call, Buffer.from(command)).pexpire(stored, DISPATCH_KEYS_TTL_MS).exec()) ?? [];
      const err = replies.find(([e]) => e)?.[0];
      if (err) throw err;
    }
    let got: Awaited<ReturnType<typeof awaitReplies>>;
    try {
      await postEntries(redis, keys, { kind, taskId, call, deadlineMs, trace, hops: 0 }, routes.byReplica);
      const pending = new Set([...routes.byReplica.values()].flat());
      log.debug({ taskId, kind, replicas: routes.byReplica.size, nodes: pending.size }, 'dispatch posted to other replicas');
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
    return { ok: got.ok, failed: [...failed, ...got.failed, ...got.missing.map((n) => unreachable(n, missingDetail))] };
  }
}
