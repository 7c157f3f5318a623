import { LIMITS, structDepth } from './limits';

/**
 * Turns a task's stdout, stderr and exit code into its result value, exactly as the task spec
 * says (docs/task-format.md §6.1): a JSON object on stdout is the value, anything else becomes
 * `{_output: stdout}`, and a non-zero exit without `_error` adds a task-error. A result is a
 * failure iff its value has `_error`.
 */

/** The `_error` object of a failed result. */
export interface TaskErrorValue {
  kind: string;
  msg: string;
  details: Record<string, unknown>;
  issue_code?: string;
}

/** A task's result value: what it printed, plus `_error` when it failed. */
export type ResultValue = Record<string, unknown>;

/** Error kind added when a task exits non-zero without reporting an error itself. */
export const TASK_ERROR_KIND = 'puppetlabs.tasks/task-error';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses a finished task's output into its result value. */
export function parseTaskOutput(task: string, stdout: Buffer | string, stderr: string, exitcode: number): ResultValue {
  const bytes = typeof stdout === 'string' ? Buffer.from(stdout) : stdout;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return {
      _error: { kind: TASK_ERROR_KIND, issue_code: 'TASK_ERROR', msg: 'The task result contained invalid UTF-8 on stdout', details: { exit_code: exitcode } },
    };
  }
  let value: ResultValue;
  try {
    const parsed: unknown = JSON.parse(text);
    // A value nested deeper than a result may carry (LIMITS.structDepth) would get the whole
    // result refused by the results service; kept as text, it is still reported.
    value = isObject(parsed) && structDepth(parsed) <= LIMITS.structDepth.max ? parsed : { _output: text };
  } catch {
    value = { _output: text };
  }
  if (exitcode !== 0 && !('_error' in value)) {
    let msg = `The task failed with exit code ${exitcode}`;
    if (text.length === 0 && stderr.length === 0) msg += ' and no output';
    else if (text.length === 0) msg += ` and no stdout, but stderr contained:\n${stderr}`;
    value._error = { kind: TASK_ERROR_KIND, issue_code: 'TASK_ERROR', msg, details: { exit_code: exitcode } };
  }
  if ('_error' in value) {
    const err = value._error;
    if (!isObject(err) || typeof err.msg !== 'string') {
      value._error = {
        kind: 'bolt/invalid-task-error',
        msg: `Invalid error returned from task ${task}: ${JSON.stringify(err)}. Error must be an object with a msg key.`,
        details: { original_error: err },
      };
    } else {
      value._error = { ...err, kind: typeof err.kind === 'string' ? err.kind : 'bolt/error', details: isObject(err.details) ? err.details : {} };
    }
  }
  return value;
}

/** True when a result value reports a failure. */
export function isFailure(value: ResultValue): boolean {
  return '_error' in value;
}
