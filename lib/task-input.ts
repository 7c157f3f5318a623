import type { Parameter, Task } from '../gen/baton/v1/task';
import { createHash } from 'node:crypto';
import type { FieldViolation } from './errors';
import { REDACTED_VALUE } from './redaction';
import {
  coerceCliValue,
  compileSignature,
  InputShapeError,
  InvalidParameterTypeError,
  Signature,
  toPlain,
  type ParameterDeclaration,
  typeAliasesFrom,
} from './puppet-types';

/**
 * Task input validation (docs/task-format.md §4): the input must be a JSON object; for tasks that
 * declare parameters, unknown keys and missing required parameters are rejected, defaults are
 * applied to absent or null parameters, and values are checked against the base of their
 * Puppet type. Used by the scheduler (authoritative) and the CLI (early feedback).
 *
 * Type checking is deliberately partial for now: only the base type name is checked
 * (`String*`, `Integer*`, `Float*`, `Numeric`, `Boolean`, `Array*`, `Hash*`, and `Enum[...]`
 * membership), through any number of `Optional[...]` wrappers. Type parameters (sizes, ranges,
 * element types) and every other type (`Variant`, `Pattern`, `Struct`, `Tuple`, `Data`, module
 * aliases, ...) pass unchecked until the full Puppet type system lands in lib/.
 *
 * Number lexemes are kept: the given values travel on as their exact source text (`1.0` stays a
 * Float, big integers are not rounded), since docs/task-format.md §7.1 makes `1` and `1.0`
 * different types and §5.4 warns that re-serialising numbers changes what the task sees.
 */

/** Largest accepted input, in bytes of JSON text (Choria's `bolt_tasks` DDL `input` maxlength). */
export const MAX_INPUT_BYTES = 102_400;

/** Field name of violations about the input as a whole. */
export const INPUT_FIELD = 'input_json';

/** The outcome of `validateTaskInput`. */
export interface ValidatedTaskInput {
  /** The input with defaults applied (numbers as JavaScript numbers; see `inputJson` for the exact text). */
  input: Record<string, unknown>;
  /** The same input as JSON text, given values kept exactly as written, defaults appended. */
  inputJson: string;
  /** The same text with every sensitive parameter's value replaced by `REDACTED_VALUE`. */
  redactedJson: string;
  /**
   * Every problem found, empty when the input is valid. `field` is the parameter name, or
   * `input_json` for problems with the input as a whole; `description` is one line in Puppet's
   * wording (`has no parameter named 'x'`).
   */
  violations: FieldViolation[];
}

/** One top-level key with the JSON text of its value. */
interface Entry {
  key: string;
  json: string;
  value: unknown;
}

/** Validates `inputJson` (empty means `{}`) against `task`'s parameters and applies defaults. */
export function validateTaskInput(task: Task, inputJson: string): ValidatedTaskInput {
  const text = inputJson.trim() === '' ? '{}' : inputJson;
  const fail = (violations: FieldViolation[]): ValidatedTaskInput => ({ input: {}, inputJson: '{}', redactedJson: '{}', violations });
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_INPUT_BYTES) return fail([{ field: INPUT_FIELD, description: `input is ${bytes} bytes of JSON; at most ${MAX_INPUT_BYTES} are accepted` }]);
  const signature = taskSignature(task);
  if (signature instanceof InvalidParameterTypeError) {
    return fail([{ field: signature.parameter, description: `task ${task.name} cannot be run: ${signature.message}` }]);
  }
  let result;
  try {
    result = signature.validate(text);
  } catch (err) {
    if (err instanceof InputShapeError) return fail([{ field: INPUT_FIELD, description: err.message }]);
    throw err;
  }
  // Refused input is not rendered: nothing uses it, and an input of thousands of keys would cost as much again.
  if (result.violations.length > 0) return fail(result.violations);
  const entries: Entry[] = result.entries.map((e) => ({ key: e.key, json: e.json, value: toPlain(e.value) }));
  const input: Record<string, unknown> = {};
  for (const e of entries) Object.defineProperty(input, e.key, { value: e.value, enumerable: true, writable: true, configurable: true });
  return { input, inputJson: render(entries), redactedJson: render(redacted(task, entries)), violations: result.violations };
}

/** Compiled signatures are kept this long in number of entries (oldest evicted first). */
export const SIGNATURE_CACHE_ENTRIES = 2_000;

const signatures = new Map<string, Signature | InvalidParameterTypeError>();

/**
 * The task's compiled parameter signature, from a cache keyed by task name, environment and a
 * hash of the declared parameters (types, defaults, sensitivity), so a task edited on disk is
 * recompiled while validating a known task costs one hash and a map lookup. A parameter whose
 * type is not valid Puppet gives the InvalidParameterTypeError instead (cached too).
 */
export function taskSignature(task: Task): Signature | InvalidParameterTypeError {
  const aliases = Object.entries(task.typeAliases ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  const shape = JSON.stringify([
    task.parametersDeclared,
    task.parameters.map((p): unknown[] => [p.name, p.type, p.sensitive, p.defaultValue ?? null]),
    aliases,
  ]);
  const key = `${task.name}\0${task.environment}\0${createHash('sha1').update(shape).digest('base64')}`;
  const hit = signatures.get(key);
  if (hit) return hit;
  let compiled: Signature | InvalidParameterTypeError;
  try {
    // The module type aliases travel with the task (Task.type_aliases), so they resolve here too.
    compiled = compileSignature(task.parametersDeclared ? Object.fromEntries(task.parameters.map((p) => [p.name, declaration(p)])) : undefined, {
      aliases: aliases.length > 0 ? typeAliasesFrom(Object.fromEntries(aliases)) : undefined,
    });
  } catch (err) {
    if (!(err instanceof InvalidParameterTypeError)) throw err;
    compiled = err;
  }
  if (signatures.size >= SIGNATURE_CACHE_ENTRIES) {
    const [oldestKey, oldest] = signatures.entries().next().value as [string, Signature | InvalidParameterTypeError];
    signatures.delete(oldestKey);
    if (oldest instanceof Signature) oldest.dispose();
  }
  signatures.set(key, compiled);
  return compiled;
}

/**
 * Coerces a command-line `name=value` string for one of `task`'s parameters (the Bolt rule,
 * docs/task-format.md §8): the JSON text to put in the input. A task whose signature does not
 * compile, or an undeclared name, gets the plain rule (parsed JSON if it parses, else the string).
 */
export function coerceTaskParameter(task: Task, name: string, raw: string): string {
  const signature = taskSignature(task);
  return signature instanceof Signature ? signature.coerce(name, raw).json : coerceCliValue(undefined, raw).json;
}

function declaration(p: Parameter): ParameterDeclaration {
  return { type: p.type === '' ? undefined : p.type, default: p.defaultValue as unknown, sensitive: p.sensitive };
}

/**
 * The input as JSON text with the values of `task`'s sensitive parameters replaced by
 * `"Sensitive [value redacted]"`, for logs and audit records.
 */
export function redactInput(task: Task, input: Record<string, unknown>): string {
  return render(
    redacted(
      task,
      Object.entries(input).map(([key, value]) => ({ key, json: JSON.stringify(value), value })),
    ),
  );
}

/** A parameter whose type is Puppet's Sensitive (`Sensitive[String]`, `Optional[Sensitive]`, ...). */
const SENSITIVE_TYPE = /(^|[^A-Za-z0-9_:])Sensitive\b/;

/**
 * Names of `task`'s sensitive parameters: declared `sensitive: true` (docs/task-format.md
 * §4 step 6), or of a Sensitive type, whose value is just as secret. One rule for run records,
 * spools and audit lines.
 */
export function sensitiveParameters(task: Pick<Task, 'parameters'>): string[] {
  return task.parameters.filter((p) => p.sensitive || SENSITIVE_TYPE.test(p.type)).map((p) => p.name);
}

function redacted(task: Task, entries: Entry[]): Entry[] {
  const sensitive = new Set(sensitiveParameters(task));
  return entries.map((e) => (sensitive.has(e.key) ? { ...e, json: JSON.stringify(REDACTED_VALUE), value: REDACTED_VALUE } : e));
}

function render(entries: Entry[]): string {
  return `{${entries.map((e) => `${JSON.stringify(e.key)}:${e.json}`).join(',')}}`;
}
