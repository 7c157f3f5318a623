import { InputMethod } from '../gen/baton/v1/task';

/**
 * How a task receives its input (docs/task-format.md §5.2–5.6): the input method, the arguments object
 * (the input plus metaparameters), the JSON document on stdin and the `PT_` variables.
 */

/** The input methods the agent runs; `powershell` needs a PowerShell host and is refused. */
export type ResolvedInputMethod = 'stdin' | 'environment' | 'both' | 'powershell';

/** Input that is not a JSON object. */
export class InvalidInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidInputError';
  }
}

/** The command's input method, else `powershell` for a `.ps1` executable, else `both` (docs/task-format.md §5.2). */
export function resolveInputMethod(method: InputMethod, executable: string): ResolvedInputMethod {
  switch (method) {
    case InputMethod.INPUT_METHOD_STDIN:
      return 'stdin';
    case InputMethod.INPUT_METHOD_ENVIRONMENT:
      return 'environment';
    case InputMethod.INPUT_METHOD_BOTH:
      return 'both';
    case InputMethod.INPUT_METHOD_POWERSHELL:
      return 'powershell';
    default:
      return /\.ps1$/i.test(executable) ? 'powershell' : 'both';
  }
}

/** True when the method writes the arguments on stdin. */
export function usesStdin(method: ResolvedInputMethod): boolean {
  return method === 'stdin' || method === 'both';
}

/** True when the method sets `PT_` variables. */
export function usesEnvironment(method: ResolvedInputMethod): boolean {
  return method === 'environment' || method === 'both';
}

/** Parses the command's input_json (empty means `{}`); throws InvalidInputError unless it is an object. */
export function parseInput(inputJson: string): Record<string, unknown> {
  let input: unknown;
  try {
    input = JSON.parse(inputJson.trim() === '' ? '{}' : inputJson);
  } catch (err) {
    throw new InvalidInputError(`input_json is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new InvalidInputError('input_json must be a JSON object');
  return input as Record<string, unknown>;
}

/** The metaparameters the agent adds to every run (docs/task-format.md §5.6). */
export interface MetaParameters {
  /** Canonical task name (`_task`). */
  task: string;
  /** Absolute path of the laid-out files (`_installdir`). */
  installdir: string;
  /** Adds `_noop: true` when set. */
  noop: boolean;
}

/**
 * The arguments object: the input plus `_task` and `_installdir` (always: every Baton run lays
 * its files out, so there is always an install dir; Choria set it inconsistently,
 * docs/choria-compat.md §4) and `_noop: true` for a no-op run. Metaparameters win over input keys of
 * the same name, which the scheduler never sends.
 */
export function taskArguments(input: Record<string, unknown>, meta: MetaParameters): Record<string, unknown> {
  const args: Record<string, unknown> = { ...input, _task: meta.task, _installdir: meta.installdir };
  if (meta.noop) args._noop = true;
  else delete args._noop;
  return args;
}

/** A variable name the environment can carry (the name after `PT_`). */
const ENV_KEY = /^[A-Za-z0-9_]+$/;

/**
 * The `PT_<key>` variables of an arguments object: strings raw, everything else its compact
 * JSON (`1`, `true`, `null`, `[1,"a"]`, `{"x":1}`), as Bolt does. Choria's Ruby runner used
 * `to_s`, which turns hashes and arrays into Ruby inspect syntax (docs/choria-compat.md §4); this is
 * the fix. Keys that cannot be variable names (only possible for tasks that declare no
 * parameters) are returned in `skipped`; they reach the task on stdin only.
 */
export function ptVariables(args: Record<string, unknown>): { vars: Record<string, string>; skipped: string[] } {
  const vars: Record<string, string> = {};
  const skipped: string[] = [];
  for (const [k, v] of Object.entries(args)) {
    if (!ENV_KEY.test(k)) {
      skipped.push(k);
      continue;
    }
    vars[`PT_${k}`] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  return { vars, skipped };
}

/** What identifies a run to the task, in Choria's variables. */
export interface RunIdentity {
  taskId: string;
  caller: string;
  task: string;
}

/**
 * The task's environment: the agent's own (PATH, locale, HOME...) without its `BATON_*`
 * configuration or stray `PT_*` variables, Choria's `_choria_task_id`, `_choria_task_caller` and
 * `_task`, and the `PT_` variables when the method uses them.
 */
export function taskEnvironment(
  base: NodeJS.ProcessEnv,
  method: ResolvedInputMethod,
  args: Record<string, unknown>,
  run: RunIdentity,
): { env: Record<string, string>; skipped: string[] } {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    // The agent's configuration (addresses, TLS file paths) is not the task's business, and a
    // PT_ variable the agent happened to inherit would look like a parameter the caller set.
    if (v !== undefined && !k.startsWith('BATON_') && !k.startsWith('PT_')) env[k] = v;
  }
  env._choria_task_id = run.taskId;
  env._choria_task_caller = run.caller;
  env._task = run.task;
  if (!usesEnvironment(method)) return { env, skipped: [] };
  const { vars, skipped } = ptVariables(args);
  return { env: { ...env, ...vars }, skipped };
}

/** The stdin document: the arguments object as one compact JSON text (docs/task-format.md §5.3). */
export function stdinDocument(args: Record<string, unknown>): string {
  return JSON.stringify(args);
}
