import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { runStateToJSON } from '../../gen/baton/v1/run';
import type { Logger } from '../../lib/logger';
import { isFinalRunState } from '../../lib/run-states';
import type { RawRunEntry, RunStore } from './run-store';

/**
 * Retention by age, so Redis does not grow without bound: a periodic sweep removes every run whose
 * end time (or, for a run that never ended, creation time) is older than the retention, with its
 * node results, its event log and its index entries, one run per atomic script (DELETE_RUN_SCRIPT).
 *
 * Candidates come from the runs index, oldest first, RETENTION_SWEEP_BATCH at a time
 * (ZRANGEBYSCORE LIMIT): a run's end time is never before its creation time, so only runs
 * created before the cutoff can have expired, and one read or one batch of deletions holds
 * Redis for a short moment only, even over 100k expired runs.
 *
 * A run that is still not final when its creation time is older than the retention is removed
 * too, with a warning: nothing of Baton's keeps a run open that long (the scheduler stops
 * waiting after minutes), so such a run is stuck (its scheduler died and nobody finalised it),
 * and keeping it would keep its keys forever. A run younger than the retention is never
 * removed, whatever its state.
 */

/** Default retention of a run after it ended: 30 days, in seconds. */
export const DEFAULT_RUN_RETENTION_S = 2_592_000;
/** Default time between two sweeps, in seconds. */
export const DEFAULT_RETENTION_SWEEP_INTERVAL_S = 3_600;
/** Runs read and judged per step of a sweep. */
export const RETENTION_SWEEP_BATCH = 100;

/** Options of RunRetention. */
export interface RunRetentionOptions {
  store: RunStore;
  log: Logger;
  /** Clock; default `() => new Date()`. */
  now?: () => Date;
  /** Seconds a run is kept after it ended; 0 keeps runs forever. Default DEFAULT_RUN_RETENTION_S. */
  runRetentionS?: number;
  /** Seconds between sweeps once started. Default DEFAULT_RETENTION_SWEEP_INTERVAL_S. */
  sweepIntervalS?: number;
}

/** What one sweep did. */
export interface SweepReport {
  /** Runs removed. */
  removed: number;
  /** Runs created before the cutoff that were kept (ended recently, or changed while judged). */
  kept: number;
}

/** The time after which a run has expired: its end, or its creation when it never ended. */
function lastActivityMs(entry: RawRunEntry & { score: number }): number {
  return entry.run?.endTime?.getTime() ?? entry.score;
}

/** Removes expired runs, once (`sweep`) or every interval (`start`). */
export class RunRetention {
  private readonly now: () => Date;
  /** Retention in seconds; 0 disables sweeping. */
  readonly runRetentionS: number;
  /** Seconds between sweeps. */
  readonly sweepIntervalS: number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private running: Promise<SweepReport> | undefined;

  constructor(private readonly options: RunRetentionOptions) {
    this.now = options.now ?? (() => new Date());
    this.runRetentionS = options.runRetentionS ?? DEFAULT_RUN_RETENTION_S;
    this.sweepIntervalS = options.sweepIntervalS ?? DEFAULT_RETENTION_SWEEP_INTERVAL_S;
  }

  /** Sweeps now, then every `sweepIntervalS`, until `stop`. Does nothing when retention is 0. */
  start(): void {
    if (this.runRetentionS === 0 || this.stopped) return;
    const tick = () => {
      this.sweep()
        .catch((err: unknown) =>
          this.options.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'retention sweep failed; retrying at the next interval'),
        )
        .finally(() => {
          if (this.stopped) return;
          this.timer = setTimeout(tick, this.sweepIntervalS * 1000);
          this.timer.unref();
        });
    };
    tick();
  }

  /** Stops sweeping; a sweep under way ends after its current batch. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Runs one sweep now (joining the one under way, if any). */
  sweep(): Promise<SweepReport> {
    this.running ??= this.sweepOnce().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async sweepOnce(): Promise<SweepReport> {
    const report: SweepReport = { removed: 0, kept: 0 };
    if (this.runRetentionS === 0) return report;
    const { store, log } = this.options;
    const cutoffMs = this.now().getTime() - this.runRetentionS * 1000;
    for (;;) {
      // Kept runs stay at the front of the index, so the next batch starts after them.
      const batch = await store.oldestRuns(cutoffMs - 1, report.kept, RETENTION_SWEEP_BATCH);
      const removed = await Promise.all(
        batch.map(async (entry) => {
          if (lastActivityMs(entry) >= cutoffMs) return false;
          if (entry.run && !isFinalRunState(entry.run.state)) {
            log.warn({ taskId: entry.taskId, state: runStateToJSON(entry.run.state) }, 'removing a run that never finished and is older than the retention');
          }
          return store.deleteRun(entry);
        }),
      );
      for (const r of removed) {
        if (r) report.removed++;
        else report.kept++;
      }
      if (batch.length < RETENTION_SWEEP_BATCH || this.stopped) break;
      await yieldToEventLoop(); // let gRPC calls in between batches
    }
    if (report.removed > 0) log.info({ removed: report.removed, kept: report.kept, retentionS: this.runRetentionS }, 'expired runs removed');
    return report;
  }
}
