import { status as grpcStatus } from '@grpc/grpc-js';
import { NodeState, RunState } from '../../gen/baton/v1/run';
import { isServiceError } from '../../lib/errors';
import { unary } from '../../lib/grpc-client';
import type { Logger } from '../../lib/logger';
import type { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { errorText } from './error-text';
import { runRecordDeadlineMs, unstartedResult } from './node-results';
import { CANCELLED_BEFORE_START } from './run-cancel';
import type { CoordinatedRun, RunCoordinator } from './run-coordinator';
import type { RunOrchestrator } from './run-orchestrator';
import type { RunStateStore } from './run-state';
import type { RunTracker } from './run-tracker';

/** What the resumer works with. */
export interface RunResumerOptions {
  store: RunStateStore;
  coordinator: RunCoordinator;
  orchestrator: RunOrchestrator;
  results: ResultsServiceClient;
  tracker: RunTracker;
  log: Logger;
  /** ms between scans for runs whose coordinator is gone; default half the lease. */
  scanMs?: number;
}

/**
 * Finds runs whose coordinator is gone and resumes them here: at start and every `scanMs`, each
 * run in the active set whose coordinator lease lapsed is taken over (a new fencing epoch) and
 * driven on from the phase Redis holds:
 * - GATE: the downloads again to every node (waiting for nodes whose agents reconnect), then
 *   batch 0 as a new run would.
 * - RUNNING batch k: the run command again to the nodes of batch k without a final result (an
 *   agent never runs a task id twice), then the later batches.
 * - SLEEPING after batch k: the rest of the sleep, then batch k + 1 and the later ones.
 * A cancelled run is only brought to its end; a run that ended meanwhile only loses its state.
 */
export class RunResumer {
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private readonly resuming = new Set<string>();

  constructor(private readonly options: RunResumerOptions) {}

  /** Scans now and then every `scanMs` until `stop`. */
  start(): void {
    const scanMs = this.options.scanMs ?? Math.max(100, Math.floor(this.options.store.leaseMs / 2));
    this.timer = setInterval(() => void this.scan(), scanMs);
    this.timer.unref();
    void this.scan();
  }

  /** Stops scanning (runs resumed already go on until the scheduler releases them). */
  stop(): void {
    clearInterval(this.timer);
  }

  /** One scan; never rejects (failures are logged and the next scan tries again). */
  scan(): Promise<void> {
    this.scanning ??= this.scanOnce()
      .catch((err: unknown) => this.options.log.warn({ err: errorText(err) }, 'could not scan for runs whose scheduler is gone'))
      .finally(() => (this.scanning = undefined));
    return this.scanning;
  }

  private async scanOnce(): Promise<void> {
    const { store, coordinator, log } = this.options;
    for (const taskId of await store.active()) {
      if (coordinator.coordinates(taskId) || this.resuming.has(taskId)) continue;
      const taken = await store.takeOver(taskId);
      if (taken === 'held' || taken === 'gone') continue;
      log.info({ taskId, phase: taken.state.phase, batch: taken.state.batch, epoch: taken.state.epoch }, 'took over a run whose coordinator is gone');
      this.resuming.add(taskId);
      const tracked = this.options.tracker.track(taskId, taken.plan);
      const run = coordinator.adopt(taken.state, taken.plan, taken.command, tracked);
      for (const n of run.dispatched()) tracked.dispatched.add(n);
      this.resume(run)
        .catch(async (err: unknown) => {
          log.error({ taskId, err: errorText(err) }, 'resuming a run failed; the next scan takes it over again');
          await coordinator.abandon(run);
        })
        .finally(() => this.resuming.delete(taskId));
    }
  }

  private async resume(run: CoordinatedRun): Promise<void> {
    const { coordinator, orchestrator, log } = this.options;
    const { taskId } = run.state;
    try {
      await coordinator.refresh(run);
    } catch (err) {
      if (isServiceError(err) && err.code === grpcStatus.NOT_FOUND) {
        // The coordinator died before the run was created, or retention removed it.
        log.info({ taskId }, 'a resumed run does not exist; its state is removed');
        return coordinator.finish(run);
      }
      throw err;
    }
    if (run.tracked.done) return coordinator.finish(run);
    if (run.state.cancelled || run.tracked.cancelled) return this.endCancelled(run);
    switch (run.state.phase) {
      case 'GATE': {
        if (!(await orchestrator.advance(run.tracked, RunState.RUN_STATE_DOWNLOADING))) return this.endCancelled(run);
        const failures = await coordinator.regate(run);
        if (run.fenced) return;
        if (run.tracked.cancelled) return this.endCancelled(run);
        if (failures.length > 0) {
          // Throws DOWNLOAD_FAILED once the run is FAILED and its state removed, as for a RunTask
          // caller; records nothing when yet another scheduler took the run over meanwhile.
          await orchestrator.gateClosed(run.identity, run, failures).catch((err: unknown) => {
            if (!run.stopped) throw err;
          });
          return;
        }
        if (!(await orchestrator.afterGate(run))) return this.endCancelled(run);
        const sent = await coordinator.sendBatch(run, 0);
        if (sent === 'cancelled') return this.endCancelled(run);
        if (sent === 'ok') orchestrator.continueInBackground(run, 0);
        return;
      }
      case 'RUNNING': {
        const sent = await coordinator.resendBatch(run, run.state.batch);
        if (sent === 'cancelled') return this.endCancelled(run);
        if (sent === 'ok') orchestrator.continueInBackground(run, run.state.batch);
        return;
      }
      case 'SLEEPING':
        orchestrator.continueInBackground(run, run.state.batch, run.state.sleepUntilMs);
        return;
    }
  }

  /**
   * A run cancelled while its coordinator was gone (or during the takeover): CancelRun recorded
   * it, unless it failed half-way; recording again changes nothing that is final.
   */
  private async endCancelled(run: CoordinatedRun): Promise<void> {
    const { results, coordinator } = this.options;
    const dispatched = new Set(run.dispatched());
    const unstarted = run.plan.filter((n) => !run.tracked.isFinal(n) && !dispatched.has(n));
    await unary(
      results,
      results.updateRunState,
      { taskId: run.state.taskId, state: RunState.RUN_STATE_CANCELLED, reason: 'cancelled' },
      { deadlineMs: runRecordDeadlineMs(run.plan.length) },
    ).catch(() => undefined);
    if (unstarted.length > 0) {
      const items = unstarted.map((n) => unstartedResult(run.identity, n, NodeState.NODE_STATE_CANCELLED, CANCELLED_BEFORE_START));
      await unary(results, results.recordNodeResults, { taskId: run.state.taskId, results: items }).catch(() => undefined);
    }
    await coordinator.finish(run);
  }
}
