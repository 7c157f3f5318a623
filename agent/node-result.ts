import { NodeState, type NodeResult } from '../gen/baton/v1/run';
import { isFailure, parseTaskOutput, type TaskErrorValue } from '../lib/task-output';
import { REDACTED_VALUE } from '../lib/redaction';

/**
 * The NodeResults the agent reports (docs/agent-protocol.md §5): a finished task's, with its
 * value parsed by lib/task-output.ts, and a run that could not start.
 */

/** MCollective status codes used by the agent (docs/choria-compat.md §2). */
export const STATUS_OK = 0;
/** The task ran and failed (or was stopped). */
export const STATUS_TASK_FAILED = 1;
/** The command was malformed (task id, file path, input). */
export const STATUS_INVALID_DATA = 4;
/** The agent could not start the task (files missing or not matching, spawn failure). */
export const STATUS_AGENT_ERROR = 5;

/** Error kinds of node-side failures, in the spirit of Choria's `choria.tasks/wrapper-error`. */
export const ERROR_KIND = {
  invalidCommand: 'baton.tasks/invalid-command',
  fileMismatch: 'baton.tasks/file-mismatch',
  notSupported: 'baton.tasks/not-supported',
  spawnFailed: 'baton.tasks/spawn-error',
  agentError: 'baton.tasks/agent-error',
  timeout: 'baton.tasks/timeout',
  cancelled: 'baton.tasks/cancelled',
  /** The wrapper is gone and left no exit status (killed, or the node rebooted). */
  wrapperDied: 'baton.tasks/wrapper-died',
  /** The agent stopped before a queued task was started; the input is not kept, so it is not started later. */
  notStarted: 'baton.tasks/not-started',
  /** No implementation's requirements are all among the node's features (docs/task-format.md §5.1). */
  noImplementation: 'bolt/no-implementation',
  /** A no-op run of a task without `supports_noop` (docs/task-format.md §5.6). */
  noopNotSupported: 'bolt/noop-not-supported',
} as const;

/** Which run a result belongs to. */
export interface ResultIdentity {
  /** The agent's identity (`host`). */
  host: string;
  taskId: string;
  task: string;
  caller: string;
}

/** Why the agent stopped a task, if it did: its timeout ran out, or a CancelCommand. */
export type StopReason = 'TIMEOUT' | 'CANCEL';

/** What is known about a task once it exited. */
export interface TaskExit {
  stdout: Buffer;
  stderr: string;
  exitcode: number;
  /** The signal that ended the task, if one did. */
  signal: NodeJS.Signals | null;
  startTime: Date;
  endTime: Date;
  /** Set when the agent stopped the task. */
  stoppedBy?: StopReason;
  /** The run's timeout in seconds (for the message of a TIMEOUT stop). */
  timeoutS: number;
}

function statusMessage(error: unknown): string {
  const e = error as Partial<TaskErrorValue>;
  return `${String(e.kind)}: ${String(e.msg)}`;
}

/** The result of a task that ran and exited. */
export function exitedResult(id: ResultIdentity, exit: TaskExit): NodeResult {
  const value = parseTaskOutput(id.task, exit.stdout, exit.stderr, exit.exitcode);
  const details = { exit_code: exit.exitcode, signal: exit.signal };
  if (exit.stoppedBy === 'TIMEOUT') {
    value._error = { kind: ERROR_KIND.timeout, msg: `The task did not finish within its timeout of ${exit.timeoutS} s and was stopped`, details };
  } else if (exit.stoppedBy === 'CANCEL') {
    value._error = { kind: ERROR_KIND.cancelled, msg: 'The task was cancelled', details };
  }
  const failed = isFailure(value);
  return {
    host: id.host,
    taskId: id.taskId,
    task: id.task,
    callerid: id.caller,
    state: exit.stoppedBy === 'CANCEL' ? NodeState.NODE_STATE_CANCELLED : failed ? NodeState.NODE_STATE_FAILED : NodeState.NODE_STATE_SUCCEEDED,
    exitcode: exit.exitcode,
    stdout: exit.stdout.toString('utf8'),
    stderr: exit.stderr,
    value,
    completed: true,
    runtime: Math.max(0, (exit.endTime.getTime() - exit.startTime.getTime()) / 1000),
    startTime: exit.startTime,
    statuscode: failed ? STATUS_TASK_FAILED : STATUS_OK,
    statusmsg: failed ? statusMessage(value._error) : '',
  };
}

/** The result of a run that could not start: FAILED, not completed, exitcode -1. */
export function notStartedResult(id: ResultIdentity, statuscode: number, kind: string, msg: string, startTime = new Date()): NodeResult {
  return {
    host: id.host,
    taskId: id.taskId,
    task: id.task,
    callerid: id.caller,
    state: NodeState.NODE_STATE_FAILED,
    exitcode: -1,
    stdout: '',
    stderr: '',
    value: { _error: { kind, msg, details: {} } },
    completed: false,
    runtime: 0,
    startTime,
    statuscode,
    statusmsg: `${kind}: ${msg}`,
  };
}

/**
 * The value with its top-level `_sensitive` (what a task marks secret) replaced by REDACTED_VALUE, for logs and
 * listings. The result itself keeps it: the spec wraps it as Sensitive for the caller, who can
 * unwrap it, so it is redacted where it is shown, not where it is stored.
 */
export function redactSensitive(value: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!value || !('_sensitive' in value)) return value;
  return { ...value, _sensitive: REDACTED_VALUE };
}
