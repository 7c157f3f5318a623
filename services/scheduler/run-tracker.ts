/**
 * The runs this scheduler has dispatched and not yet seen finish: what a foreground RunTask
 * waits on (the nodes whose result is not final yet) and whether CancelRun came before the run
 * command went out. In memory only: the results service holds the truth.
 */

/** How long a run stays tracked when some of its nodes never report, in ms (one hour). */
export const TRACKED_RUN_TTL_MS = 60 * 60 * 1000;

/** One dispatched run. */
export class TrackedRun {
  /** Set by CancelRun; the orchestrator then sends no run command. */
  cancelled = false;
  private readonly pending: Set<string>;
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly taskId: string,
    nodes: string[],
  ) {
    this.pending = new Set(nodes);
  }

  /** True when every node has a final result. */
  get done(): boolean {
    return this.pending.size === 0;
  }

  /** Records that a node's result is final. */
  markFinal(host: string): void {
    if (!this.pending.delete(host) || !this.done) return;
    for (const w of this.waiters) w();
    this.waiters.clear();
  }

  /** Resolves true once every node is final, or false after `timeoutMs`. */
  waitUntilDone(timeoutMs: number): Promise<boolean> {
    if (this.done) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(finish);
        resolve(this.done);
      };
      const timer = setTimeout(finish, timeoutMs);
      this.waiters.add(finish);
    });
  }
}

/** Tracks dispatched runs by task id. */
export class RunTracker {
  private readonly runs = new Map<string, TrackedRun>();

  /** Starts tracking a run over `nodes`; it is forgotten when all are final or after TRACKED_RUN_TTL_MS. */
  track(taskId: string, nodes: string[], ttlMs = TRACKED_RUN_TTL_MS): TrackedRun {
    const run = new TrackedRun(taskId, nodes);
    this.runs.set(taskId, run);
    setTimeout(() => this.forget(run), ttlMs).unref();
    return run;
  }

  /** The tracked run of a task id, if any. */
  get(taskId: string): TrackedRun | undefined {
    return this.runs.get(taskId);
  }

  /** Records that `host`'s result of a run is final. */
  markFinal(taskId: string, host: string): void {
    const run = this.runs.get(taskId);
    if (!run) return;
    run.markFinal(host);
    if (run.done) this.forget(run);
  }

  /** Stops tracking a run (its waiters keep their outcome). */
  forget(run: TrackedRun): void {
    if (this.runs.get(run.taskId) === run) this.runs.delete(run.taskId);
  }
}
