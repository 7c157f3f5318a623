import { isTaskId } from '../lib/task-id';
import { CliError } from './cli-error';

/** Checks a task id argument: one line naming what was expected. */
export function checkTaskId(taskId: string): void {
  if (!isTaskId(taskId)) throw new CliError(`'${taskId}' is not a task id; expected 32 lowercase hex characters (as printed by 'baton tasks run')`);
}
