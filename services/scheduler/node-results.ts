import { NodeResult, NodeState } from '../../gen/baton/v1/run';

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
