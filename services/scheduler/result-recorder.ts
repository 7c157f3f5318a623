import type { TaskFinished, TaskStarted } from '../../gen/baton/v1/agent_gateway_service';
import { NodeResult, NodeState, nodeStateToJSON } from '../../gen/baton/v1/run';
import type { Logger } from '../../lib/logger';
import { isTaskId } from '../../lib/task-id';
import type { OutstandingRun } from './outstanding-run';
import { errorText } from './error-text';
import type { ResultBatcher } from './result-batcher';
import type { FinishedNotices } from './finished-notices';
import type { RunTracker } from './run-tracker';
import { metrics } from '../../lib/metrics';
import { isFinalNodeState } from '../../lib/run-states';

/**
 * Records what agents report (TaskStarted, TaskFinished) in the results service, through the
 * batcher that sends each run's results together. Every result is recorded whether or not a
 * RunTask is still waiting for it: results arriving after the wait, or re-sent in a Hello after
 * a reconnect, are stored too. Each method queues its result before it returns (so results of
 * one node are sent in the order the methods were called) and resolves once the result's batch
 * has landed.
 */
export class ResultRecorder {
  constructor(
    private readonly batcher: ResultBatcher,
    private readonly tracker: RunTracker,
    private readonly log: Logger,
    /** Where results of runs coordinated by another replica are announced to it; default none (one replica). */
    private readonly notices?: FinishedNotices,
  ) {}

  /** Records a node as RUNNING since `start_time`. Failures are logged: the final result follows anyway. */
  recordStarted(identity: string, started: TaskStarted): Promise<void> {
    if (!isTaskId(started.taskId)) {
      this.log.warn({ node: identity, taskId: started.taskId }, 'TaskStarted with an invalid task id; ignored');
      return Promise.resolve();
    }
    // task and callerid are left empty: the results service fills them in from the run.
    const result = NodeResult.fromPartial({
      host: identity,
      taskId: started.taskId,
      state: NodeState.NODE_STATE_RUNNING,
      exitcode: -1,
      startTime: started.startTime ?? new Date(),
    });
    return this.recordQuietly(result, 'could not record TaskStarted');
  }

  /**
   * Records a finished result and tells whether to acknowledge it: true once it is stored, or
   * when it can never be stored (unknown run, malformed); false when the results service could
   * not take it, so the agent keeps it and it is sent again later.
   */
  recordFinished(identity: string, finished: TaskFinished): Promise<boolean> {
    const given = finished.result;
    if (!given || !isTaskId(given.taskId)) {
      this.log.warn({ node: identity, taskId: given?.taskId }, 'TaskFinished without a valid task id; acknowledged and dropped');
      return Promise.resolve(true);
    }
    if (given.host !== identity) {
      // An agent speaks only for itself: the stream's identity wins over what the result claims.
      this.log.warn({ node: identity, claimed: given.host, taskId: given.taskId }, 'TaskFinished names another host; recorded under the session identity');
    }
    // task and callerid come from the run, never from the agent: emptied here, the results
    // service fills them in from the run.
    const result: NodeResult = { ...given, host: identity, task: '', callerid: '' };
    const arrivedMs = Date.now();
    // Asked when the result arrives: once stored, the run may be over and forgotten here, and a
    // run this replica coordinated needs no notice.
    const coordinatedElsewhere = this.tracker.get(result.taskId) === undefined;
    return this.batcher.record(result).then(
      (outcome) => {
        if (!outcome.stored) {
          this.log.warn({ node: identity, taskId: result.taskId, err: outcome.reason }, 'results service refused a result; acknowledged and dropped');
        } else {
          metrics.resultLatency.observe((Date.now() - arrivedMs) / 1000);
          // NODE_STATE_SUCCEEDED → succeeded, NODE_STATE_NO_RESPONSE → no_response, ...
          metrics.nodeResults.inc({
            outcome: nodeStateToJSON(result.state)
              .replace(/^NODE_STATE_/, '')
              .toLowerCase(),
          });
        }
        this.markFinal(result);
        // A run this replica does not coordinate: its coordinator learns of the node now rather
        // than at its next status read.
        if (outcome.stored && this.notices && coordinatedElsewhere) this.notices.add(result.taskId, result.host);
        return true;
      },
      (err: unknown) => {
        this.log.warn(
          { node: identity, taskId: result.taskId, err: errorText(err) },
          'could not record a result; retried while the agent stays connected, re-sent by the agent after a reconnect',
        );
        return false;
      },
    );
  }

  /**
   * Shows in the run that the node's agent disconnected at `since` while the run was
   * outstanding there. There is no DISCONNECTED node state (proto/baton/v1/run.proto): the node
   * keeps its state — RUNNING once it reported TaskStarted (the task goes on under its wrapper,
   * docs/agent-protocol.md §5), else DOWNLOADED (it passed the file gate; the run command may be
   * queued, or its TaskStarted was lost with the agent) — and its statusmsg says the agent is
   * away. A final result stored meanwhile is
   * never overwritten (the results service keeps final results). Failures are logged only.
   */
  recordAway(identity: string, run: OutstandingRun, since: Date): Promise<void> {
    const what = run.startTime
      ? 'the task goes on under its wrapper and its result is reported when the agent reconnects'
      : 'it had not reported the task started; the node reports the task when the agent reconnects';
    return this.recordProgress(identity, run, `agent disconnected at ${since.toISOString()}; ${what}`, 'could not record that the node disconnected');
  }

  /** Clears what `recordAway` showed once the node's agent is connected again. Failures are logged only. */
  recordBack(identity: string, run: OutstandingRun): Promise<void> {
    return this.recordProgress(identity, run, '', 'could not record that the node reconnected');
  }

  private recordProgress(identity: string, run: OutstandingRun, statusmsg: string, failure: string): Promise<void> {
    // As recordStarted writes it (task and callerid are filled in by the results service), so
    // only statusmsg differs from what the node showed before.
    const result = NodeResult.fromPartial({
      host: identity,
      taskId: run.taskId,
      state: run.startTime ? NodeState.NODE_STATE_RUNNING : NodeState.NODE_STATE_DOWNLOADED,
      exitcode: -1,
      startTime: run.startTime,
      statusmsg,
    });
    return this.recordQuietly(result, failure);
  }

  /** Records a progress result; a failure or refusal is logged only. */
  private recordQuietly(result: NodeResult, failure: string): Promise<void> {
    return this.batcher.record(result).then(
      (outcome) => {
        if (!outcome.stored) this.log.warn({ node: result.host, taskId: result.taskId, err: outcome.reason }, failure);
      },
      (err: unknown) => this.log.warn({ node: result.host, taskId: result.taskId, err: errorText(err) }, failure),
    );
  }

  private markFinal(result: NodeResult): void {
    // A TaskFinished is the node's last word on the run even if it carries an unexpected state.
    if (!isFinalNodeState(result.state)) this.log.debug({ node: result.host, state: result.state }, 'TaskFinished with a non-final state');
    this.tracker.markFinal(result.taskId, result.host);
  }
}
