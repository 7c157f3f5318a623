import { NodeResult, NodeState } from '../../gen/baton/v1/run';
import type { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { DEFAULT_DEADLINE_MS, unary } from '../../lib/grpc-client';
import { LIMITS } from '../../lib/limits';

/**
 * The deadline of a call that writes a run's whole record (CreateRun, UpdateRunState), in ms:
 * the client's default plus a little per node. The record names every node: CreateRun writes a
 * large run in many short slices, and a state change reads the record, writes it back and
 * answers with it, so at 100,000 nodes either takes seconds on a busy machine, and giving up on
 * it half-way would fail the run (or make the caller try again) for the size of the record.
 */
export function runRecordDeadlineMs(nodes: number): number {
  return DEFAULT_DEADLINE_MS + Math.ceil(nodes * RUN_RECORD_MS_PER_NODE);
}
const RUN_RECORD_MS_PER_NODE = 0.2;

/** MCollective status code of an agent-side error (download failure, no response, wrapper failure). */
export const STATUSCODE_AGENT_ERROR = 5;

/** What the scheduler knows of a run when it records a node result itself. */
export interface RunIdentity {
  taskId: string;
  task: string;
  caller: string;
}

/**
 * A result the scheduler records for a node that never ran the task: the download failed
 * (FAILED), the node did not answer (NO_RESPONSE), or the run was cancelled before it started
 * (CANCELLED). exitcode -1 and completed false, as for a task that never started.
 */
export function unstartedResult(run: RunIdentity, host: string, state: NodeState, statusmsg: string): NodeResult {
  return NodeResult.fromPartial({
    host,
    taskId: run.taskId,
    task: run.task,
    callerid: run.caller,
    state,
    exitcode: -1,
    completed: false,
    statuscode: state === NodeState.NODE_STATE_CANCELLED ? 1 : STATUSCODE_AGENT_ERROR,
    statusmsg,
  });
}

/**
 * Records results the scheduler writes itself (a whole plan DOWNLOADED, every offline or lost
 * node), in calls of at most the results service's per-call limit: at a large run these lists
 * run to tens of thousands of nodes, and one call with all of them would be refused.
 */
export async function recordResults(results: ResultsServiceClient, taskId: string, list: NodeResult[]): Promise<void> {
  const perCall = LIMITS.recordResults.max;
  for (let at = 0; at < list.length; at += perCall) {
    await unary(results, results.recordNodeResults, { taskId, results: list.slice(at, at + perCall) });
  }
}
