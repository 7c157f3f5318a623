import { NodeState, RunState, type NodeResult, type Run } from '../../gen/baton/v1/run';
import type { RunHeader } from './run-header';
import { InvalidArgumentError, type FieldViolation } from '../../lib/errors';
import { TASK_NAME } from '../../lib/names';
import { taskIdProblem } from '../../lib/task-id';
import { isFinalRunState, isKnownNodeState, isKnownRunState } from '../../lib/run-states';
import { quote } from '../../lib/quote';

/**
 * Checks of the results service's requests. Each problem is a field violation naming the field
 * and what was expected; any problem rejects the whole request with INVALID_ARGUMENT before
 * anything is written.
 */

/** A stream entry id, `<ms>-<seq>`, as used for resume tokens. */
const STREAM_ID = /^\d{1,20}-\d{1,20}$/;

/** INVALID_ARGUMENT listing `violations` (at least one), its message naming the first. */
function invalid(violations: FieldViolation[]): InvalidArgumentError {
  const first = `${violations[0].field}: ${violations[0].description}`;
  const message = violations.length === 1 ? first : `${first} (and ${violations.length - 1} more problem${violations.length > 2 ? 's' : ''})`;
  return new InvalidArgumentError(message, violations);
}

/** Throws INVALID_ARGUMENT listing `violations` when there are any. */
function reject(violations: FieldViolation[]): void {
  if (violations.length > 0) throw invalid(violations);
}

/** Throws INVALID_ARGUMENT unless `token` is empty or an event id. */
export function requireResumeToken(token: string): void {
  if (token !== '' && !STREAM_ID.test(token)) {
    reject([{ field: 'resume_token', description: `resume_token must be the id of an event of this run (like 1700000000000-0), got ${quote(token)}` }]);
  }
}

/**
 * Checks the run of a CreateRun request and returns it as it will be stored: nodes sorted,
 * state PENDING and create_time `now` when unset, end_time `now` when created in a final state.
 */
export function normalizeNewRun(run: Run | undefined, now: Date): Run {
  if (!run) throw invalid([{ field: 'run', description: 'run is required' }]);
  const violations: FieldViolation[] = [];
  const taskIdWrong = taskIdProblem(run.taskId);
  if (taskIdWrong !== undefined) violations.push({ field: 'run.task_id', description: taskIdWrong });
  if (run.task === '') violations.push({ field: 'run.task', description: 'task is required (a canonical task name such as acme::deploy)' });
  else if (!TASK_NAME.test(run.task))
    violations.push({ field: 'run.task', description: `task must be a canonical task name such as acme::deploy, got ${quote(run.task)}` });
  if (run.nodes.length === 0) violations.push({ field: 'run.nodes', description: 'nodes is required: the run needs at least one node' });
  const seen = new Set<string>();
  run.nodes.forEach((node, i) => {
    if (node === '') violations.push({ field: `run.nodes[${i}]`, description: 'node identity must not be empty' });
    else if (seen.has(node)) violations.push({ field: `run.nodes[${i}]`, description: `node ${JSON.stringify(node)} is listed twice` });
    seen.add(node);
  });
  if (run.state !== RunState.RUN_STATE_UNSPECIFIED && !isKnownRunState(run.state)) {
    violations.push({ field: 'run.state', description: `state ${Number(run.state)} is not a RunState` });
  }
  reject(violations);
  const state = run.state === RunState.RUN_STATE_UNSPECIFIED ? RunState.RUN_STATE_PENDING : run.state;
  return {
    ...run,
    state,
    nodes: [...run.nodes].sort(),
    createTime: run.createTime ?? now,
    endTime: run.endTime ?? (isFinalRunState(state) ? now : undefined),
  };
}

/**
 * Checks the results of a RecordNodeResults request against the run's header and returns them
 * as they will be stored: task_id, task and callerid filled in from the run where empty.
 * Whether each host is a node of the run is checked where the results are written (the record
 * script, without reading the run's node list), and reported by `unknownHostsError`.
 */
export function normalizeNodeResults(run: RunHeader, results: NodeResult[]): NodeResult[] {
  const violations: FieldViolation[] = [];
  results.forEach((r, i) => {
    const at = `results[${i}]`;
    if (r.host === '') violations.push({ field: `${at}.host`, description: 'host is required' });
    if (r.taskId !== '' && r.taskId !== run.taskId) {
      violations.push({ field: `${at}.task_id`, description: `task_id ${JSON.stringify(r.taskId)} differs from the request's task_id ${run.taskId}` });
    }
    if (r.state === NodeState.NODE_STATE_UNSPECIFIED || !isKnownNodeState(r.state)) {
      violations.push({ field: `${at}.state`, description: `state is required: one of the NodeState values other than NODE_STATE_UNSPECIFIED` });
    }
    if (!Number.isFinite(r.runtime) || r.runtime < 0)
      violations.push({ field: `${at}.runtime`, description: `runtime must be a number of seconds >= 0, got ${r.runtime}` });
  });
  reject(violations);
  return results.map((r) => ({ ...r, taskId: run.taskId, task: r.task || run.task, callerid: r.callerid || run.caller }));
}

/** INVALID_ARGUMENT naming each result (by its position in the request) whose host is not a node of run `taskId`. */
export function unknownHostsError(taskId: string, results: readonly NodeResult[], positions: readonly number[]): InvalidArgumentError {
  return invalid(
    positions.map((i) => ({ field: `results[${i}].host`, description: `host ${JSON.stringify(results[i].host)} is not one of the nodes of run ${taskId}` })),
  );
}

/** Checks the new state of an UpdateRunState request. */
export function requireRunState(state: RunState): void {
  if (state === RunState.RUN_STATE_UNSPECIFIED || !isKnownRunState(state)) {
    reject([{ field: 'state', description: 'state is required: one of the RunState values other than RUN_STATE_UNSPECIFIED' }]);
  }
}
