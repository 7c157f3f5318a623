import { InputMethod, type Task } from '../../gen/baton/v1/task';
import { FailedPreconditionError } from '../../lib/errors';

/**
 * Requirements every Baton agent satisfies (POSIX agents spawn executables directly). Used only
 * for RunCommand.executable, the fallback of agents that ignore RunCommand.implementations: the
 * agent itself picks the implementation by its own features (agent/implementation.ts), and
 * fails its node when none fits, so the scheduler never refuses a run over implementations.
 */
export const SUPPORTED_REQUIREMENTS: readonly string[] = ['shell', 'posix'];

/** The executable a run uses and how it gets its input. */
export interface ChosenExecutable {
  /** Module-relative path, one of the task's files. */
  path: string;
  /** The implementation's input method, else the task's (unspecified lets the agent decide). */
  inputMethod: InputMethod;
}

/**
 * The fallback executable (docs/task-format.md §5): the first file when the task has no
 * implementations, otherwise the first implementation, in metadata order, whose requirements are
 * all in SUPPORTED_REQUIREMENTS, else the first implementation. Throws FailedPreconditionError for
 * a task without files or whose chosen implementation is not among its files.
 */
export function chooseExecutable(task: Task): ChosenExecutable {
  if (task.files.length === 0) throw new FailedPreconditionError('TASK_HAS_NO_FILES', `task ${task.name} has no files to run`);
  if (task.implementations.length === 0) return { path: task.files[0].path, inputMethod: task.inputMethod };
  const impl = task.implementations.find((i) => i.requirements.every((r) => SUPPORTED_REQUIREMENTS.includes(r))) ?? task.implementations[0];
  if (!task.files.some((f) => f.path === impl.path)) {
    throw new FailedPreconditionError('IMPLEMENTATION_FILE_MISSING', `task ${task.name}: implementation ${impl.path} is not among the task's files`);
  }
  return { path: impl.path, inputMethod: impl.inputMethod !== InputMethod.INPUT_METHOD_UNSPECIFIED ? impl.inputMethod : task.inputMethod };
}
