import { randomBytes } from 'node:crypto';
import { InvalidArgumentError } from './errors';
import { quote } from './quote';

/** A task id: 32 lowercase hex characters (Choria's request id format, docs/choria-compat.md §6.1). */
export const TASK_ID_PATTERN = /^[0-9a-f]{32}$/;

/** What a task id looks like, as messages say it. */
export const TASK_ID_EXPECTED = '32 lowercase hex characters';

/** Makes a new random task id. */
export function newTaskId(): string {
  return randomBytes(16).toString('hex');
}

/** True when `s` has the form of a task id. */
export function isTaskId(s: string): boolean {
  return TASK_ID_PATTERN.test(s);
}

/**
 * What is wrong with `value` as a task id (`'abc' is not a task id; expected 32 lowercase hex
 * characters`), undefined when it is one. Every piece says it in these words.
 */
export function taskIdProblem(value: string): string | undefined {
  return isTaskId(value) ? undefined : `${quote(value)} is not a task id; expected ${TASK_ID_EXPECTED}`;
}

/** Throws INVALID_ARGUMENT naming `field` (`task_id: 'abc' is not a task id; ...`) unless `value` is a task id. */
export function requireTaskId(value: string, field = 'task_id'): void {
  const problem = taskIdProblem(value);
  if (problem !== undefined) throw new InvalidArgumentError(`${field}: ${problem}`, [{ field, description: problem }]);
}
