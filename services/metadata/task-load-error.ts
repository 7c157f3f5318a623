import type { TaskError } from '../../gen/baton/v1/task';

/**
 * The task-spec error kinds a task can fail to load with (docs/task-format.md §1 items 8, 9, 11;
 * Puppet `Puppet::Module::Task`). They are the `kind` of TaskSummary.error and of the
 * FAILED_PRECONDITION that GetTask answers for a broken task.
 */
export type TaskLoadErrorKind =
  | 'puppet.tasks/unreadable-metadata'
  | 'puppet.tasks/unparseable-metadata'
  | 'puppet.tasks/invalid-metadata'
  | 'puppet.tasks/invalid-file'
  | 'puppet.tasks/missing-implementation'
  | 'puppet.tasks/no-implementation'
  | 'puppet.tasks/multiple-implementations';

/** Why one task cannot be loaded; the scanner keeps it on the task instead of failing the catalog. */
export class TaskLoadError extends Error {
  constructor(
    readonly kind: TaskLoadErrorKind,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'TaskLoadError';
  }

  /** The error in the task spec's `{kind, msg, details}` shape. */
  toTaskError(): TaskError {
    return { kind: this.kind, msg: this.message, details: this.details };
  }
}
