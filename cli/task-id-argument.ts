import { taskIdProblem } from '../lib/task-id';
import { CliError } from './cli-error';

/** Checks a task id argument: one line naming what was expected. */
export function checkTaskId(taskId: string): void {
  const problem = taskIdProblem(taskId);
  if (problem !== undefined) throw new CliError(`${problem} (as printed by 'baton tasks run')`);
}
