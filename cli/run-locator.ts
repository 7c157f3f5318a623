import type { Run } from '../gen/baton/v1/run';
import type { Clients } from './connection';

/** Interval at which the run record of a pending RunTask is looked for. */
const FIND_RUN_INTERVAL_MS = 100;

/** How far back (for clocks that disagree) the listing looks for a run this CLI just asked for. */
const CLOCK_SLACK_MS = 60_000;

/**
 * Finds the run a pending RunTask created, by its request id among the caller's newest runs of
 * that task: RunTask answers only at the end of its wait, but the task id exists (and the
 * operator needs it, to watch or cancel from elsewhere) as soon as the run is recorded.
 */
export class RunLocator {
  private run: Run | undefined;
  private stopped = false;
  private readonly waiters = new Set<(run: Run | undefined) => void>();
  /** Resolves with the run once found; never rejects (a listing error only means "not yet"). */
  readonly found: Promise<Run | undefined>;

  constructor(
    private readonly clients: Clients,
    private readonly requestId: string,
    private readonly task: string,
  ) {
    const since = new Date(Date.now() - CLOCK_SLACK_MS);
    this.found = this.poll(since);
  }

  private async poll(since: Date): Promise<Run | undefined> {
    while (!this.stopped && !this.run) {
      try {
        const page = await this.clients.call('results', (c) => c.listRuns, { pageSize: 20, pageToken: '', task: this.task, caller: this.clients.callerId(), createdAfter: since });
        const run = page.runs.find((r) => r.requestId === this.requestId);
        if (run) this.settle(run);
      } catch {
        // Not reachable now: the RunTask answer carries the task id anyway.
      }
      if (!this.run) await new Promise((r) => setTimeout(r, FIND_RUN_INTERVAL_MS));
    }
    return this.run;
  }

  /** The run, once known (from the listing or from RunTask's answer). */
  get current(): Run | undefined {
    return this.run;
  }

  /** Records the run (RunTask's answer came first). */
  settle(run: Run): void {
    this.run ??= run;
    for (const w of this.waiters) w(this.run);
    this.waiters.clear();
  }

  /** The run, waiting at most `ms` for it to be found. */
  within(ms: number): Promise<Run | undefined> {
    if (this.run || this.stopped) return Promise.resolve(this.run);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(done);
        resolve(this.run);
      }, ms);
      const done = (run: Run | undefined) => {
        clearTimeout(timer);
        resolve(run);
      };
      this.waiters.add(done);
    });
  }

  /** Stops looking. */
  stop(): void {
    this.stopped = true;
    for (const w of this.waiters) w(this.run);
    this.waiters.clear();
  }
}
