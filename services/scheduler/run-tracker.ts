/**
 * The runs this scheduler has dispatched and not yet seen finish: what a foreground RunTask
 * and the batch loop wait on (the nodes whose result is not final yet), which nodes the run
 * command went to, and whether CancelRun came. In memory only: the results service holds the
 * truth.
 */

/** How long a run stays tracked after its last batch went out when some of its nodes never report, in ms (one hour). */
export const TRACKED_RUN_TTL_MS = 60 * 60 * 1000;

/** Called on every change of a tracked run: a node became final (`host`), or the run was cancelled (no host). */
type Waiter = (host?: string) => void;

/** One dispatched run. */
export class TrackedRun {
  /** Nodes the run command was sent to. */
  readonly dispatched = new Set<string>();
  private cancelRequested = false;
  private interrupted = false;
  private readonly pending: Set<string>;
  private readonly waiters = new Set<Waiter>();
  /** How many distinct nodes the run has. */
  private readonly size: number;

  constructor(
    readonly taskId: string,
    nodes: string[],
  ) {
    this.pending = new Set(nodes);
    this.size = this.pending.size;
  }

  /** True once CancelRun asked to stop the run; no run command is sent after that. */
  get cancelled(): boolean {
    return this.cancelRequested;
  }

  /** True when every node has a final result. */
  get done(): boolean {
    return this.pending.size === 0;
  }

  /** How many distinct nodes the run has. */
  get nodeCount(): number {
    return this.size;
  }

  /** How many nodes have no final result yet. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** How many nodes have a final result. */
  get finalCount(): number {
    return this.size - this.pending.size;
  }

  /** The nodes without a final result yet (a copy). */
  pendingNodes(): string[] {
    return [...this.pending];
  }

  /** True when `host`'s result is final (or `host` is not a node of the run). */
  isFinal(host: string): boolean {
    return !this.pending.has(host);
  }

  /** Records that CancelRun came: wakes whoever waits for a batch or a batch sleep. */
  cancel(): void {
    if (this.cancelRequested) return;
    this.cancelRequested = true;
    for (const w of [...this.waiters]) w();
  }

  /**
   * Ends every wait for nodes and every pause at once (they resolve true) without cancelling the
   * run: its coordination moved elsewhere, and whoever waits must look at why.
   */
  interrupt(): void {
    if (this.interrupted) return;
    this.interrupted = true;
    for (const w of [...this.waiters]) w();
  }

  /** Records that a node's result is final. */
  markFinal(host: string): void {
    if (!this.pending.delete(host)) return;
    for (const w of [...this.waiters]) w(host);
  }

  /** Resolves true once every node is final, or false after `timeoutMs`. */
  waitUntilDone(timeoutMs: number): Promise<boolean> {
    return this.waitUntil(
      () => this.done,
      () => this.done,
      timeoutMs,
    );
  }

  /**
   * Resolves true once every one of `nodes` is final, or once the run is cancelled (or the wait
   * interrupted); false after
   * `timeoutMs`. Counts down per node, so a large batch costs O(1) per result.
   */
  waitForNodes(nodes: readonly string[], timeoutMs: number): Promise<boolean> {
    const remaining = new Set(nodes.filter((n) => this.pending.has(n)));
    return this.waitUntil(
      () => remaining.size === 0 || this.cancelled || this.interrupted,
      (host) => {
        if (host !== undefined) remaining.delete(host);
        return remaining.size === 0 || this.cancelled || this.interrupted;
      },
      timeoutMs,
    );
  }

  /** Resolves true when the run is cancelled (or the wait interrupted) within `ms`, false once `ms` passed: an interruptible pause. */
  pauseUnlessCancelled(ms: number): Promise<boolean> {
    return this.waitUntil(
      () => this.cancelled || this.interrupted,
      () => this.cancelled || this.interrupted,
      ms,
    );
  }

  private waitUntil(already: () => boolean, changed: (host?: string) => boolean, timeoutMs: number): Promise<boolean> {
    if (already()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve(ok);
      };
      const waiter: Waiter = (host) => {
        if (changed(host)) finish(true);
      };
      // Unref'd: a batch loop or a wait must not keep a stopping scheduler's process alive.
      const timer = setTimeout(() => finish(false), timeoutMs);
      timer.unref();
      this.waiters.add(waiter);
    });
  }
}

/** Tracks dispatched runs by task id. */
export class RunTracker {
  private readonly runs = new Map<string, { run: TrackedRun; timer: NodeJS.Timeout }>();

  /** Starts tracking a run over `nodes`; it is forgotten when all are final or `ttlMs` after the last `touch`. */
  track(taskId: string, nodes: string[], ttlMs = TRACKED_RUN_TTL_MS): TrackedRun {
    const run = new TrackedRun(taskId, nodes);
    this.runs.set(taskId, { run, timer: this.expiry(run, ttlMs) });
    return run;
  }

  /** Starts the run's TTL again (a later batch went out). */
  touch(run: TrackedRun, ttlMs = TRACKED_RUN_TTL_MS): void {
    const entry = this.runs.get(run.taskId);
    if (entry?.run !== run) return;
    clearTimeout(entry.timer);
    entry.timer = this.expiry(run, ttlMs);
  }

  /** The tracked run of a task id, if any. */
  get(taskId: string): TrackedRun | undefined {
    return this.runs.get(taskId)?.run;
  }

  /** Records that `host`'s result of a run is final. */
  markFinal(taskId: string, host: string): void {
    const run = this.get(taskId);
    if (!run) return;
    run.markFinal(host);
    if (run.done) this.forget(run);
  }

  /** Stops tracking a run (its waiters keep their outcome). */
  forget(run: TrackedRun): void {
    const entry = this.runs.get(run.taskId);
    if (entry?.run !== run) return;
    clearTimeout(entry.timer);
    this.runs.delete(run.taskId);
  }

  private expiry(run: TrackedRun, ttlMs: number): NodeJS.Timeout {
    const timer = setTimeout(() => this.forget(run), ttlMs);
    timer.unref();
    return timer;
  }
}
