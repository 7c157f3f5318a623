/**
 * Name rules of the task spec (docs/task-format.md §1): module, task and parameter names, and the
 * canonical `<module>::<task>` form where `init` is addressed by the module name alone.
 */

/** A module, task or parameter name segment. */
export const NAME_SEGMENT = /^[a-z][a-z0-9_]*$/;

/** A canonical task name: one or two segments separated by `::`. */
export const TASK_NAME = /^[a-z][a-z0-9_]*(::[a-z][a-z0-9_]*)?$/;

/** An environment name (Choria's `download` validation). */
export const ENVIRONMENT_NAME = /^[a-z][a-z0-9_]*$/;

/** The environment used when a request leaves it empty. */
export const DEFAULT_ENVIRONMENT = 'production';

/** Splits a canonical task name into module and task (`acme` → `acme`, `init`). */
export function splitTaskName(name: string): { module: string; task: string } {
  const [module, task = 'init'] = name.split('::');
  return { module, task };
}

/** The canonical name of task file `task` in `module`: `init` becomes the module name. */
export function canonicalTaskName(module: string, task: string): string {
  return task === 'init' ? module : `${module}::${task}`;
}

/** A node identity (certname), as the agent protocol allows it (docs/agent-protocol.md §1). */
export const IDENTITY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
