import { InputMethod, type Task } from '../../gen/baton/v1/task';
import { FailedPreconditionError } from '../../lib/errors';

/**
 * Implementation requirements a Baton agent satisfies. Agents run on POSIX systems and spawn
 * executables directly (the shebang picks the interpreter), so an implementation requiring
 * `shell` or `posix`, or nothing, can run; `powershell` and anything else cannot yet. Agents do
 * not report their features, so this is one list for every node.
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
 * Picks the executable (task-spec §5): the first file when the task has no implementations,
 * otherwise the first implementation, in metadata order, whose requirements are all supported.
 * Throws FailedPreconditionError when there is none.
 */
export function chooseExecutable(task: Task): ChosenExecutable {
  if (task.files.length === 0) throw new FailedPreconditionError('TASK_HAS_NO_FILES', `task ${task.name} has no files to run`);
  if (task.implementations.length === 0) return { path: task.files[0].path, inputMethod: task.inputMethod };
  const impl = task.implementations.find((i) => i.requirements.every((r) => SUPPORTED_REQUIREMENTS.includes(r)));
  if (!impl) {
    const offered = task.implementations.map((i) => `${i.path} [${i.requirements.join(', ')}]`).join('; ');
    throw new FailedPreconditionError(
      'NO_RUNNABLE_IMPLEMENTATION',
      `task ${task.name} has no implementation agents can run (supported requirements: ${SUPPORTED_REQUIREMENTS.join(', ')}); it offers ${offered}`,
    );
  }
  if (!task.files.some((f) => f.path === impl.path)) {
    throw new FailedPreconditionError('IMPLEMENTATION_FILE_MISSING', `task ${task.name}: implementation ${impl.path} is not among the task's files`);
  }
  return { path: impl.path, inputMethod: impl.inputMethod !== InputMethod.INPUT_METHOD_UNSPECIFIED ? impl.inputMethod : task.inputMethod };
}
