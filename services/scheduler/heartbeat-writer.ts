import { LuaScript } from '../../lib/lua-script';
import type { Logger } from '../../lib/logger';
import type { NodeIndex } from './node-index';

/** Outcome of refreshing a node's last-seen time: refreshed, entry missing (Redis lost it), or owned by another session. */
export type TouchOutcome = 'TOUCHED' | 'MISSING' | 'OWNED_ELSEWHERE';

/** A node heard from: who heard it and when. */
export interface Heard {
  identity: string;
  sessionId: string;
  /** When it was heard, ms since the epoch: the last-seen time written. */
  atMs: number;
}

/** Nodes refreshed by one TOUCH_SCRIPT call at most (a few ms of Redis time). */
export const HEARTBEAT_BATCH_MAX = 1_000;

/** Longest time a heartbeat waits before it is written, in ms. */
export const HEARTBEAT_FLUSH_MAX_MS = 1_000;

/** Time between flushes at a heartbeat interval, in ms: a quarter of the interval, at most HEARTBEAT_FLUSH_MAX_MS. */
export function heartbeatFlushIntervalMs(heartbeatIntervalS: number): number {
  return Math.min(HEARTBEAT_FLUSH_MAX_MS, (heartbeatIntervalS * 1000) / 4);
}

/** Refreshes the last-seen time of nodes still held by the session that heard them, one code per node. */
const TOUCH_SCRIPT = LuaScript.fromFile(__dirname, 'touch-nodes-2plus');

/**
 * Refreshes the last-seen time of `nodes` (distinct identities), one script call per index
 * chunk; one outcome per node, in order (a node without an id is MISSING).
 */
export async function touchNodes(index: NodeIndex, nodes: Heard[]): Promise<TouchOutcome[]> {
  if (nodes.length === 0) return [];
  const { redis, keys } = index.store;
  const byName = new Map(nodes.map((n) => [n.identity, n]));
  const outcome = new Map<string, TouchOutcome>();
  const chunks = await index.chunksOf(byName.keys());
  await Promise.all(
    [...chunks].map(async ([chunk, names]) => {
      const args: string[] = [];
      for (const name of names) {
        const n = byName.get(name)!;
        args.push(n.identity, n.sessionId, String(n.atMs));
      }
      const codes = (await TOUCH_SCRIPT.run(redis, [keys.nodes(chunk), keys.online(chunk), ...names.map((n) => keys.node(chunk, n))], args)) as number[];
      codes.forEach((c, i) => outcome.set(names[i], c === 1 ? 'TOUCHED' : c === 0 ? 'MISSING' : 'OWNED_ELSEWHERE'));
    }),
  );
  return nodes.map((n) => outcome.get(n.identity) ?? 'MISSING');
}

/** A node heard since the last flush, and what to do if Redis no longer has its entry. */
interface HeardNode extends Heard {
  onMissing: () => void;
}

/**
 * Writes the heartbeats of every agent of this scheduler together: a heartbeat only notes the
 * node as heard, and every flush interval one script call (per HEARTBEAT_BATCH_MAX nodes)
 * writes the last-seen time of every node heard since the last flush — the time it was heard,
 * so liveness is judged as if it had been written at once; discovery sees it up to one flush
 * interval later, a fraction of the STALE_AFTER_HEARTBEATS intervals a node has.
 */
export class HeartbeatWriter {
  /** Time between flushes, in ms. */
  readonly flushIntervalMs: number;
  private pending = new Map<string, HeardNode>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly index: NodeIndex,
    private readonly log: Logger,
  ) {
    this.flushIntervalMs = heartbeatFlushIntervalMs(index.heartbeatIntervalS);
  }

  /**
   * Notes that `sessionId` heard node `identity` now; written at the next flush if the entry
   * still belongs to that session. `onMissing` runs when the entry is gone (Redis restarted
   * without persistence, or was flushed), for the session to write it again.
   */
  heard(identity: string, sessionId: string, onMissing: () => void, atMs = Date.now()): void {
    const known = this.pending.get(identity);
    if (known) {
      known.sessionId = sessionId;
      known.atMs = atMs;
      known.onMissing = onMissing;
    } else {
      this.pending.set(identity, { identity, sessionId, atMs, onMissing });
    }
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.flushIntervalMs);
      this.timer.unref();
    }
  }

  /** Writes what was heard since the last flush, after any flush still running; failures are logged. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.write());
    return this.flushing;
  }

  /** Writes what is left and stops flushing (on shutdown). */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  private async write(): Promise<void> {
    const nodes = [...this.pending.values()];
    this.pending = new Map();
    for (let i = 0; i < nodes.length; i += HEARTBEAT_BATCH_MAX) {
      const chunk = nodes.slice(i, i + HEARTBEAT_BATCH_MAX);
      try {
        const outcomes = await touchNodes(this.index, chunk);
        outcomes.forEach((outcome, j) => {
          if (outcome === 'MISSING') chunk[j].onMissing();
        });
      } catch (err) {
        this.log.warn({ nodes: chunk.length, err: (err as Error).message }, 'could not refresh nodes in the discovery index; their next heartbeats try again');
      }
    }
  }
}
