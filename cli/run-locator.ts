import type { StartedRun } from './run-stream';

/**
 * The run `baton tasks run` is starting, once StartRun's first message named it: what a
 * Ctrl-C needs to say how to watch or cancel it. Before that the scheduler has not created the
 * run (it is validating, discovering), and a Ctrl-C waits a moment for it.
 */
export class RunLocator {
  private run: StartedRun | undefined;
  private stopped = false;
  private readonly waiters = new Set<(run: StartedRun | undefined) => void>();

  /** The run, once known. */
  get current(): StartedRun | undefined {
    return this.run;
  }

  /** Records the run (StartRun's `started`). */
  settle(run: StartedRun): void {
    this.run ??= run;
    for (const w of this.waiters) w(this.run);
    this.waiters.clear();
  }

  /** The run, waiting at most `ms` for it to be known. */
  within(ms: number): Promise<StartedRun | undefined> {
    if (this.run || this.stopped) return Promise.resolve(this.run);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(done);
        resolve(this.run);
      }, ms);
      const done = (run: StartedRun | undefined) => {
        clearTimeout(timer);
        resolve(run);
      };
      this.waiters.add(done);
    });
  }

  /** Stops waiting: pending `within` calls resolve with what is known. */
  stop(): void {
    this.stopped = true;
    for (const w of this.waiters) w(this.run);
    this.waiters.clear();
  }
}
