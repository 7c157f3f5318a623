import type { GetRunStatusResponse, ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { NodeState, RunState, runStateToJSON, type Run } from '../../gen/baton/v1/run';
import { onBehalfOf, ON_BEHALF_OF_SELF, type AccessControl } from '../../lib/access-control';
import type { CancelRunRequest, CancelRunResponse } from '../../gen/baton/v1/scheduler_service';
import { FailedPreconditionError } from '../../lib/errors';
import { unary } from '../../lib/grpc-client';
import type { Logger } from '../../lib/logger';
import { isFinalNodeState, isFinalRunState } from '../../lib/run-states';
import { requireTaskId } from '../../lib/task-id';
import type { Dispatcher } from './dispatcher';
import { errorText } from './error-text';
import type { NodeIndex } from './node-index';
import { runRecordDeadlineMs, unstartedResult } from './node-results';
import { nodesThroughBatch, type RunStateStore } from './run-state';
import type { RunTracker } from './run-tracker';

/** What CancelRun works with. */
export interface RunCancelOptions {
  results: ResultsServiceClient;
  /** How the CancelCommand reaches the run's nodes (dispatcher.ts). */
  dispatcher: Dispatcher;
  tracker: RunTracker;
  /** Runs' orchestration state: the cancel flag every coordinator checks before sending a batch. */
  store: RunStateStore;
  log: Logger;
  /** The policy (`cancel`) and the audit log; default: everything allowed, nothing audited. */
  access?: AccessControl;
  /** The node index, for policy rules with `nodes` (a run's nodes are loaded only for them). */
  index?: NodeIndex;
}

/** Node states of a node whose task has not started, for a run this scheduler does not track. */
const NOT_STARTED_STATES: ReadonlySet<NodeState> = new Set([NodeState.NODE_STATE_PENDING, NodeState.NODE_STATE_DOWNLOADING, NodeState.NODE_STATE_DOWNLOADED]);

/** statusmsg of a node recorded CANCELLED because its task never started. */
export const CANCELLED_BEFORE_START = 'cancelled before the task started on this node';

/**
 * CancelRun (Choria could not cancel at all, mcollective-choria#438): stops
 * later batches and keeps any run command from going out (the tracked run's flag, checked right
 * before each batch is sent), sends a CancelCommand to every connected node of the run (a
 * running task gets SIGTERM, then SIGKILL after the agent's grace period, and the agent
 * reports it CANCELLED), moves the run to CANCELLED, and records the nodes that never started
 * as CANCELLED.
 *
 * The run becomes CANCELLED before those node results are recorded: the results service moves a
 * RUNNING run whose nodes are all final to SUCCEEDED or FAILED on its own, and a cancelled run
 * must not end as FAILED because its last unstarted nodes were recorded first.
 */
export async function cancelRun(options: RunCancelOptions, req: CancelRunRequest, caller?: string): Promise<CancelRunResponse> {
  requireTaskId(req.taskId);
  const { results } = options;
  // NOT_FOUND for an unknown run passes through from the results service. Read as the
  // scheduler itself: the run's task, environment and nodes are what the cancel check needs.
  const before = await unary(results, results.getRunStatus, { taskId: req.taskId }, { metadata: onBehalfOf(ON_BEHALF_OF_SELF) });
  const run = before.run;
  if (caller === undefined || !run) return stopRun(options, req, before);
  await authorizeCancel(options, caller, run);
  try {
    const answer = await stopRun(options, req, before);
    options.access?.auditBestEffort({
      event: 'cancel',
      caller,
      task_id: req.taskId,
      task: run.task,
      environment: run.environment,
      result: 'cancelled',
      signalled: answer.nodes.length,
    });
    return answer;
  } catch (err) {
    // A cancel is audited whatever its outcome; an audit failure never stops a cancel (it stops tasks).
    options.access?.auditBestEffort({ event: 'cancel', caller, task_id: req.taskId, task: run.task, environment: run.environment, result: errorText(err) });
    throw err;
  }
}

/** The policy's `cancel` check on the run's task, environment and (for rules with `nodes`) nodes. */
async function authorizeCancel(options: RunCancelOptions, caller: string, run: Run): Promise<void> {
  const { access, index } = options;
  if (!access?.policy) return;
  const request = {
    caller,
    action: 'cancel' as const,
    task: run.task,
    environment: run.environment,
    subject: `run ${run.taskId} (${run.task} in ${run.environment})`,
  };
  const nodes = access.needsNodes(request) && index ? await index.load(run.nodes) : undefined;
  access.authorize({ ...request, nodes }, { task_id: run.taskId, nodes: run.nodes.length });
}

/** How often CancelRun looks whether the coordinator has handed out the batch it was sending, in ms. */
const SENDING_POLL_MS = 50;

/**
 * Sets the run's cancel flag in Redis and answers which nodes the run command went to: the
 * nodes of every batch up to the current one (none during the gate); undefined when the run
 * has no orchestration state. When the coordinator is handing a batch out, waits until it is
 * out (at most one lease: a coordinator that died meanwhile never clears the mark), so that the
 * cancel commands reach the nodes after their run commands.
 */
async function dispatchedBeforeCancel(store: RunStateStore, taskId: string): Promise<Set<string> | undefined> {
  const point = await store.cancel(taskId);
  if (!point) return undefined;
  if (point.phase === 'GATE') return new Set();
  const until = Date.now() + store.leaseMs;
  for (let sending = point.sending; sending && Date.now() < until;) {
    await new Promise((resolve) => setTimeout(resolve, SENDING_POLL_MS));
    sending = (await store.load(taskId))?.sending ?? false;
  }
  return new Set(nodesThroughBatch(point.plan, point.batchSize, point.batch));
}

/** The cancel itself, once allowed. */
async function stopRun(options: RunCancelOptions, req: CancelRunRequest, before: GetRunStatusResponse): Promise<CancelRunResponse> {
  const { results, dispatcher, tracker, log } = options;
  const run = before.run;
  if (run && isFinalRunState(run.state)) {
    throw new FailedPreconditionError(
      'RUN_FINISHED',
      `run ${req.taskId} is ${runStateToJSON(run.state)} already; only a run that has not finished can be cancelled`,
      {
        task_id: req.taskId,
        state: runStateToJSON(run.state),
      },
    );
  }
  // From here on no batch of this run is sent, by any scheduler (the 'send' transitions check it).
  const dispatched = await dispatchedBeforeCancel(options.store, req.taskId);
  const tracked = tracker.get(req.taskId);
  tracked?.cancel(); // wakes this replica's waits for the run at once
  const nodes = await dispatcher.cancel(run?.nodes ?? [], req.taskId);
  // A run that finished meanwhile makes this FAILED_PRECONDITION naming its state (results service).
  await unary(
    results,
    results.updateRunState,
    { taskId: req.taskId, state: RunState.RUN_STATE_CANCELLED, reason: 'cancelled' },
    { deadlineMs: runRecordDeadlineMs(run?.nodes.length ?? 0) },
  );

  const unstarted = before.items.filter((r) => {
    if (isFinalNodeState(r.state)) return false;
    // Coordinated: exactly the nodes of the batches not sent. A run without orchestration state
    // (its coordination over, or created before runs had it): judged by the stored node state.
    if (dispatched) return !dispatched.has(r.host);
    return tracked ? !tracked.dispatched.has(r.host) : NOT_STARTED_STATES.has(r.state);
  });
  if (unstarted.length > 0 && run) {
    const identity = { taskId: req.taskId, task: run.task, caller: run.caller };
    await unary(results, results.recordNodeResults, {
      taskId: req.taskId,
      results: unstarted.map((r) => unstartedResult(identity, r.host, NodeState.NODE_STATE_CANCELLED, CANCELLED_BEFORE_START)),
    });
    for (const r of unstarted) tracker.markFinal(req.taskId, r.host);
  }
  log.info({ taskId: req.taskId, signalled: nodes.length, unstarted: unstarted.length }, 'run cancelled');
  return { nodes };
}
