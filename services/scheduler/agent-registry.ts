import { TRACKED_RUN_TTL_MS } from './run-tracker';
import { metrics } from '../../lib/metrics';
import type { OutstandingRun } from './outstanding-run';

/**
 * The live agent sessions of this scheduler by node identity (`Session` is the scheduler's
 * AgentSession; the registry only holds them, so it need not import it). A second connection for an
 * identity replaces the first: the newest agent process wins (docs/agent-protocol.md §1), and the
 * caller ends the replaced session's stream. It also remembers, per identity and across
 * sessions, the runs sent to each node that have no final result yet.
 */
export class AgentRegistry<Session> {
  private readonly sessions = new Map<string, Session>();
  private readonly outstandingRuns = new Map<string, Map<string, OutstandingRun>>();

  /** Makes `session` the live session of `identity`; returns the session it replaced, if any. */
  register(identity: string, session: Session): Session | undefined {
    const previous = this.sessions.get(identity);
    this.sessions.set(identity, session);
    metrics.connectedAgents.set(this.sessions.size);
    return previous === session ? undefined : previous;
  }

  /** Removes `session` if it is still the live one of `identity`; true when it was. */
  remove(identity: string, session: Session): boolean {
    if (this.sessions.get(identity) !== session) return false;
    this.sessions.delete(identity);
    metrics.connectedAgents.set(this.sessions.size);
    return true;
  }

  /** How many sessions are live here. */
  get size(): number {
    return this.sessions.size;
  }

  /** The live session of a node, if it is connected here. */
  get(identity: string): Session | undefined {
    return this.sessions.get(identity);
  }

  /** Every live session. */
  all(): Session[] {
    return [...this.sessions.values()];
  }

  /** Records that a run command went to `identity`. */
  runSent(identity: string, taskId: string, nowMs = Date.now()): void {
    let runs = this.outstandingRuns.get(identity);
    if (!runs) this.outstandingRuns.set(identity, (runs = new Map<string, OutstandingRun>()));
    // A node that never reports (its agent gone for good) must not make this grow forever:
    // entries live as long as the run tracker tracks a run.
    for (const [id, run] of runs) if (nowMs - run.sentAtMs > TRACKED_RUN_TTL_MS) runs.delete(id);
    runs.set(taskId, { taskId, sentAtMs: nowMs, away: false });
  }

  /** Records a node's TaskStarted of a run sent to it. */
  runStarted(identity: string, taskId: string, startTime: Date): void {
    const run = this.outstandingRuns.get(identity)?.get(taskId);
    if (run) run.startTime = startTime;
  }

  /** Records that a node's final result of a run is stored: nothing more is outstanding. */
  runFinished(identity: string, taskId: string): void {
    const runs = this.outstandingRuns.get(identity);
    if (!runs) return;
    runs.delete(taskId);
    if (runs.size === 0) this.outstandingRuns.delete(identity);
  }

  /** The runs sent to `identity` without a stored final result, oldest first. */
  outstanding(identity: string): OutstandingRun[] {
    return [...(this.outstandingRuns.get(identity)?.values() ?? [])];
  }
}
