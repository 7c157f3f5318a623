import { status } from '@grpc/grpc-js';
import type { TaskFinished, TaskStarted } from '../../gen/baton/v1/agent_gateway_service';
import { NodeResult, NodeState, nodeStateToJSON } from '../../gen/baton/v1/run';
import type { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { isServiceError } from '../../lib/errors';
import { unary } from '../../lib/grpc-client';
import type { Logger } from '../../lib/logger';
import { isTaskId } from '../../lib/task-id';
import type { OutstandingRun } from './agent-registry';
import { errorText } from './error-text';
import type { RunTracker } from './run-tracker';
import { metrics } from '../../lib/metrics';
import { FINAL_NODE_STATES } from '../../lib/run-states';

/**
 * Status codes of RecordNodeResults after which re-sending the same result cannot help: the
 * run does not exist (NOT_FOUND), or the results service refuses the result as malformed.
 * Such a result is logged and acknowledged so the agent stops re-sending it forever; any other
 * failure (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, ...) is not acknowledged and the agent
 * re-sends it in its next Hello (agent protocol §6).
 */
const PERMANENT_REJECTIONS: ReadonlySet<status> = new Set([status.NOT_FOUND, status.INVALID_ARGUMENT, status.FAILED_PRECONDITION]);

/**
 * Records what agents report (TaskStarted, TaskFinished) in the results service. Every result
 * is recorded whether or not a RunTask is still waiting for it: results arriving after the
 * wait, or re-sent in a Hello after a reconnect, are stored too.
 */
export class ResultRecorder {
  constructor(
    private readonly results: ResultsServiceClient,
    private readonly tracker: RunTracker,
    private readonly log: Logger,
  ) {}

  /** Records a node as RUNNING since `start_time`. Failures are logged: the final result follows anyway. */
  async recordStarted(identity: string, started: TaskStarted): Promise<void> {
    if (!isTaskId(started.taskId)) {
      this.log.warn({ node: identity, taskId: started.taskId }, 'TaskStarted with an invalid task id; ignored');
      return;
    }
    // task and callerid are left empty: the results service fills them in from the run.
    const result = NodeResult.fromPartial({
      host: identity,
      taskId: started.taskId,
      state: NodeState.NODE_STATE_RUNNING,
      exitcode: -1,
      startTime: started.startTime ?? new Date(),
    });
    try {
      await unary(this.results, this.results.recordNodeResults, { taskId: started.taskId, results: [result] });
    } catch (err) {
      this.log.warn({ node: identity, taskId: started.taskId, err: errorText(err) }, 'could not record TaskStarted');
    }
  }

  /**
   * Records a finished result and tells whether to acknowledge it: true once it is stored, or
   * when it can never be stored (unknown run, malformed); false when the results service could
   * not be reached, so the agent keeps it and re-sends it later.
   */
  async recordFinished(identity: string, finished: TaskFinished): Promise<boolean> {
    const given = finished.result;
    if (!given || !isTaskId(given.taskId)) {
      this.log.warn({ node: identity, taskId: given?.taskId }, 'TaskFinished without a valid task id; acknowledged and dropped');
      return true;
    }
    if (given.host !== identity) {
      // An agent speaks only for itself: the stream's identity wins over what the result claims.
      this.log.warn({ node: identity, claimed: given.host, taskId: given.taskId }, 'TaskFinished names another host; recorded under the session identity');
    }
    // task and callerid come from the run, never from the agent (issue 9 point 2): emptied here,
    // the results service fills them in (run-validation.ts normalizeNodeResults).
    const result: NodeResult = { ...given, host: identity, task: '', callerid: '' };
    const arrivedMs = Date.now();
    try {
      await unary(this.results, this.results.recordNodeResults, { taskId: result.taskId, results: [result] });
    } catch (err) {
      if (isServiceError(err) && PERMANENT_REJECTIONS.has(err.code)) {
        this.log.warn({ node: identity, taskId: result.taskId, err: err.details }, 'results service refused a result; acknowledged and dropped');
        this.markFinal(result);
        return true;
      }
      this.log.warn({ node: identity, taskId: result.taskId, err: errorText(err) }, 'could not record a result; retried while the agent stays connected, re-sent by the agent after a reconnect');
      return false;
    }
    metrics.resultLatency.observe((Date.now() - arrivedMs) / 1000);
    // NODE_STATE_SUCCEEDED → succeeded, NODE_STATE_NO_RESPONSE → no_response, ...
    metrics.nodeResults.inc({ outcome: nodeStateToJSON(result.state).replace(/^NODE_STATE_/, '').toLowerCase() });
    this.markFinal(result);
    return true;
  }

  /**
   * Shows in the run that the node's agent disconnected at `since` while the run was
   * outstanding there. There is no DISCONNECTED node state (proto/baton/v1/run.proto): the node
   * keeps its state — RUNNING once it reported TaskStarted (the task goes on under its wrapper,
   * agent protocol §5), else DOWNLOADED (it passed the file gate; the run command may be
   * queued, or its TaskStarted was lost with the agent) — and its statusmsg says the agent is
   * away. A final result stored meanwhile is
   * never overwritten (the results service keeps final results). Failures are logged only.
   */
  async recordAway(identity: string, run: OutstandingRun, since: Date): Promise<void> {
    const what = run.startTime
      ? 'the task goes on under its wrapper and its result is reported when the agent reconnects'
      : 'it had not reported the task started; the node reports the task when the agent reconnects';
    await this.recordProgress(identity, run, `agent disconnected at ${since.toISOString()}; ${what}`, 'could not record that the node disconnected');
  }

  /** Clears what `recordAway` showed once the node's agent is connected again. Failures are logged only. */
  async recordBack(identity: string, run: OutstandingRun): Promise<void> {
    await this.recordProgress(identity, run, '', 'could not record that the node reconnected');
  }

  private async recordProgress(identity: string, run: OutstandingRun, statusmsg: string, failure: string): Promise<void> {
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
    try {
      await unary(this.results, this.results.recordNodeResults, { taskId: run.taskId, results: [result] });
    } catch (err) {
      this.log.warn({ node: identity, taskId: run.taskId, err: errorText(err) }, failure);
    }
  }

  private markFinal(result: NodeResult): void {
    // A TaskFinished is the node's last word on the run even if it carries an unexpected state.
    if (!FINAL_NODE_STATES.has(result.state)) this.log.debug({ node: result.host, state: result.state }, 'TaskFinished with a non-final state');
    this.tracker.markFinal(result.taskId, result.host);
  }
}
