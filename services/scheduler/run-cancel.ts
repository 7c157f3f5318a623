import type { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { NodeState, RunState, runStateToJSON } from '../../gen/baton/v1/run';
import type { CancelRunRequest, CancelRunResponse } from '../../gen/baton/v1/scheduler_service';
import { FailedPreconditionError, InvalidArgumentError } from '../../lib/errors';
import { unary } from '../../lib/grpc-client';
import type { Logger } from '../../lib/logger';
import { FINAL_NODE_STATES, FINAL_RUN_STATES } from '../../lib/run-states';
import { isTaskId } from '../../lib/task-id';
import type { AgentRegistry } from './agent-registry';
import { unstartedResult } from './node-results';
import type { RunTracker } from './run-tracker';

/** What CancelRun works with. */
export interface RunCancelOptions {
  results: ResultsServiceClient;
  registry: AgentRegistry;
  tracker: RunTracker;
  log: Logger;
}

/** Node states of a node whose task has not started, for a run this scheduler does not track. */
const NOT_STARTED_STATES: ReadonlySet<NodeState> = new Set([NodeState.NODE_STATE_PENDING, NodeState.NODE_STATE_DOWNLOADING, NodeState.NODE_STATE_DOWNLOADED]);

/** statusmsg of a node recorded CANCELLED because its task never started. */
export const CANCELLED_BEFORE_START = 'cancelled before the task started on this node';

/**
 * CancelRun (issue 6 point 4; Choria could not cancel at all, mcollective-choria#438): stops
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
export async function cancelRun(options: RunCancelOptions, req: CancelRunRequest): Promise<CancelRunResponse> {
  if (!isTaskId(req.taskId)) {
    throw new InvalidArgumentError(`task_id '${req.taskId.slice(0, 64)}' is not a task id; expected 32 lowercase hex characters`, [
      { field: 'task_id', description: 'expected 32 lowercase hex characters' },
    ]);
  }
  const { results, registry, tracker, log } = options;
  // NOT_FOUND for an unknown run passes through from the results service.
  const before = await unary(results, results.getRunStatus, { taskId: req.taskId });
  const run = before.run;
  if (run && FINAL_RUN_STATES.has(run.state)) {
    throw new FailedPreconditionError('RUN_FINISHED', `run ${req.taskId} is ${runStateToJSON(run.state)} already; only a run that has not finished can be cancelled`, {
      task_id: req.taskId,
      state: runStateToJSON(run.state),
    });
  }
  const tracked = tracker.get(req.taskId);
  tracked?.cancel(); // synchronous: from here on no batch of this run is sent
  const nodes = (run?.nodes ?? []).filter((node) => registry.get(node)?.send({ $case: 'cancel', value: { taskId: req.taskId } }) === true);
  // A run that finished meanwhile makes this FAILED_PRECONDITION naming its state (results service).
  await unary(results, results.updateRunState, { taskId: req.taskId, state: RunState.RUN_STATE_CANCELLED, reason: 'cancelled' });

  const unstarted = before.items.filter((r) => {
    if (FINAL_NODE_STATES.has(r.state)) return false;
    // Tracked here: exactly the nodes no run command went to. Untracked (another replica, or a
    // restart): judged by the stored state; a node that did start and reports later keeps the
    // CANCELLED recorded here (the first final result wins), and its task is stopped anyway.
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
  return { nodes: nodes.sort() };
}
