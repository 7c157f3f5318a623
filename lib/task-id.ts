import { randomBytes } from 'node:crypto';

/** A task id: 32 lowercase hex characters (Choria's request id format, docs/choria-compat.md §6.1). */
export const TASK_ID_PATTERN = /^[0-9a-f]{32}$/;

/** Makes a new random task id. */
export function newTaskId(): string {
  return randomBytes(16).toString('hex');
}

/** True when `s` has the form of a task id. */
export function isTaskId(s: string): boolean {
  return TASK_ID_PATTERN.test(s);
}
