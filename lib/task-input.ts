import type { Parameter, Task } from '../gen/baton/v1/task';
import type { FieldViolation } from './errors';
import { NAME_SEGMENT } from './names';

/**
 * Task input validation (task-spec.md §4): the input must be a JSON object; for tasks that
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
 * Float, big integers are not rounded), since task-spec §7.1 makes `1` and `1.0` different types
 * and §5.4 warns that re-serialising numbers changes what the task sees.
 */

/** Largest accepted input, in bytes of JSON text (Choria's `bolt_tasks` DDL `input` maxlength). */
export const MAX_INPUT_BYTES = 102_400;

/** What a sensitive parameter's value is replaced with in logs and audit records (task-spec §4 step 6). */
export const REDACTED_VALUE = 'Sensitive [value redacted]';

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
  const fail = (description: string): ValidatedTaskInput => ({
    input: {},
    inputJson: '{}',
    redactedJson: '{}',
    violations: [{ field: INPUT_FIELD, description }],
  });
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_INPUT_BYTES) return fail(`input is ${bytes} bytes of JSON; at most ${MAX_INPUT_BYTES} are accepted`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return fail(`input must be a JSON object: ${(err as Error).message}`);
  }
  if (!isPlainObject(parsed)) return fail(`input must be a JSON object, got ${describeJsonType(parsed)}`);

  const violations: FieldViolation[] = [];
  const entries: Entry[] = [];
  const seen = new Set<string>();
  for (const { key, json } of topLevelEntries(text)) {
    // JSON.parse keeps the last duplicate silently; a person who wrote a key twice meant one of them.
    if (seen.has(key)) violations.push({ field: key, description: `gives parameter '${key}' more than once` });
    seen.add(key);
    entries.push({ key, json, value: parsed[key] });
  }

  const params = new Map(task.parameters.map((p) => [p.name, p]));
  for (const e of entries) {
    if (e.key.startsWith('_')) {
      violations.push({ field: e.key, description: `has no parameter named '${e.key}' (keys starting with '_' are metaparameters set by Baton)` });
    } else if (task.parametersDeclared && !params.has(e.key)) {
      violations.push({ field: e.key, description: `has no parameter named '${e.key}'` });
    } else if (!task.parametersDeclared && !NAME_SEGMENT.test(e.key)) {
      // Without declared parameters the input must be Hash[Pattern[/\A[a-z][a-z0-9_]*\z/], Data] (task-spec §4 step 4).
      violations.push({ field: e.key, description: `has an invalid parameter name '${e.key}' (expected ${NAME_SEGMENT.source})` });
    }
  }

  for (const p of task.parameters) {
    const hasDefault = p.defaultValue !== undefined && p.defaultValue !== null;
    const given = entries.find((e) => e.key === p.name);
    if (given && given.value !== null) {
      const problem = baseTypeProblem(p, given.value, given.json);
      if (problem) violations.push({ field: p.name, description: problem });
    } else if (hasDefault) {
      // Defaults replace absent and null values alike (task-spec §4 step 3).
      const value: unknown = p.defaultValue;
      if (given) Object.assign(given, { json: JSON.stringify(value), value });
      else entries.push({ key: p.name, json: JSON.stringify(value), value });
    } else if (p.required) {
      violations.push({ field: p.name, description: `expects a value for parameter '${p.name}'` });
    }
  }

  const input: Record<string, unknown> = {};
  for (const e of entries) input[e.key] = e.value;
  return { input, inputJson: render(entries), redactedJson: render(redacted(task, entries)), violations };
}

/**
 * The input as JSON text with the values of `task`'s sensitive parameters replaced by
 * `"Sensitive [value redacted]"`, for logs and audit records.
 */
export function redactInput(task: Task, input: Record<string, unknown>): string {
  return render(redacted(task, Object.entries(input).map(([key, value]) => ({ key, json: JSON.stringify(value), value }))));
}

/** Names of `task`'s sensitive parameters. */
export function sensitiveParameters(task: Task): string[] {
  return task.parameters.filter((p) => p.sensitive).map((p) => p.name);
}

function redacted(task: Task, entries: Entry[]): Entry[] {
  const sensitive = new Set(sensitiveParameters(task));
  return entries.map((e) => (sensitive.has(e.key) ? { ...e, json: JSON.stringify(REDACTED_VALUE), value: REDACTED_VALUE } : e));
}

function render(entries: Entry[]): string {
  return `{${entries.map((e) => `${JSON.stringify(e.key)}:${e.json}`).join(',')}}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const INTEGER_LEXEME = /^-?\d+$/;

/** Puppet's name for the type of a JSON value (task-spec §7.1: a number with `.` or an exponent is a Float). */
function describeJsonType(value: unknown, json?: string): string {
  if (value === null) return 'Undef';
  if (typeof value === 'string') return 'String';
  if (typeof value === 'boolean') return 'Boolean';
  if (typeof value === 'number') return (json !== undefined ? INTEGER_LEXEME.test(json.trim()) : Number.isInteger(value)) ? 'Integer' : 'Float';
  if (Array.isArray(value)) return 'Array';
  return 'Hash';
}

const TYPE_EXPRESSION = /^([A-Z][A-Za-z0-9_]*(?:::[A-Z][A-Za-z0-9_]*)*)\s*(?:\[([\s\S]*)\])?$/;

/** Base types checked by name, with what a matching value is. */
const BASE_TYPES: Record<string, { article: string; accepts: (value: unknown, json: string) => boolean }> = {
  String: { article: 'a', accepts: (v) => typeof v === 'string' },
  Integer: { article: 'an', accepts: (v, json) => typeof v === 'number' && INTEGER_LEXEME.test(json.trim()) },
  Float: { article: 'a', accepts: (v, json) => typeof v === 'number' && !INTEGER_LEXEME.test(json.trim()) },
  Numeric: { article: 'a', accepts: (v) => typeof v === 'number' },
  Boolean: { article: 'a', accepts: (v) => typeof v === 'boolean' },
  Array: { article: 'an', accepts: (v) => Array.isArray(v) },
  Hash: { article: 'a', accepts: (v) => isPlainObject(v) },
};

/** Checks a non-null value against the base of the parameter's type; see the module comment for what is checked. */
function baseTypeProblem(p: Parameter, value: unknown, json: string): string | undefined {
  let type = p.type.trim();
  for (;;) {
    const m = TYPE_EXPRESSION.exec(type);
    if (!m) return undefined; // not a type expression this partial checker understands
    const [, name, args] = m;
    if (name === 'Optional' && args !== undefined) {
      type = args.trim();
      continue;
    }
    if (name === 'Enum' && args !== undefined) return enumProblem(p.name, args, value, json);
    const base = BASE_TYPES[name];
    if (!base || base.accepts(value, json)) return undefined;
    return `parameter '${p.name}' expects ${base.article} ${name} value, got ${describeJsonType(value, json)}`;
  }
}

/** `Enum[a, 'b', ...(, true)]`: a string equal to one of the values (case-insensitively when the last argument is `true`). */
function enumProblem(name: string, args: string, value: unknown, json: string): string | undefined {
  const values: string[] = [];
  for (const raw of args.split(',').map((a) => a.trim())) {
    const quoted = /^'((?:[^'\\]|\\.)*)'$|^"((?:[^"\\]|\\.)*)"$/.exec(raw);
    if (quoted) values.push((quoted[1] ?? quoted[2]).replace(/\\(.)/g, '$1'));
    else if (/^[a-z_][A-Za-z0-9_-]*$/.test(raw)) values.push(raw);
    else return undefined; // quoted commas and the like: left to the full type checker
  }
  let caseInsensitive = false;
  if (values.length > 1 && values[values.length - 1] === 'true') {
    values.pop();
    caseInsensitive = true;
  }
  const fold = (s: string) => (caseInsensitive ? s.toLowerCase() : s);
  if (typeof value === 'string' && values.some((v) => fold(v) === fold(value))) return undefined;
  const expected = `Enum[${values.map((v) => `'${v}'`).join(', ')}]`;
  const got = typeof value === 'string' ? `'${value}'` : describeJsonType(value, json);
  return `parameter '${name}' expects a match for ${expected}, got ${got}`;
}

// --- A scanner for the top level of a JSON object already known to be valid JSON. ---

const WHITESPACE = new Set([' ', '\t', '\n', '\r']);

function skipWhitespace(text: string, i: number): number {
  while (WHITESPACE.has(text[i])) i++;
  return i;
}

/** Index just past the string literal starting at `i`. */
function endOfString(text: string, i: number): number {
  let j = i + 1;
  while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
  return j + 1;
}

/** Index just past the JSON value starting at `i`. */
function endOfValue(text: string, i: number): number {
  const c = text[i];
  if (c === '"') return endOfString(text, i);
  if (c === '{' || c === '[') {
    let depth = 0;
    let j = i;
    do {
      const ch = text[j];
      if (ch === '"') {
        j = endOfString(text, j);
        continue;
      }
      if (ch === '{' || ch === '[') depth++;
      else if (ch === '}' || ch === ']') depth--;
      j++;
    } while (depth > 0);
    return j;
  }
  let j = i;
  while (j < text.length && !WHITESPACE.has(text[j]) && text[j] !== ',' && text[j] !== '}' && text[j] !== ']') j++;
  return j;
}

/** The keys of a valid JSON object text, in order, each with its value's exact source text. */
function topLevelEntries(text: string): Array<{ key: string; json: string }> {
  const out: Array<{ key: string; json: string }> = [];
  let i = skipWhitespace(text, 0) + 1; // past '{'
  i = skipWhitespace(text, i);
  if (text[i] === '}') return out;
  for (;;) {
    i = skipWhitespace(text, i);
    const keyEnd = endOfString(text, i);
    const key = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipWhitespace(text, skipWhitespace(text, keyEnd) + 1); // past ':'
    const valueEnd = endOfValue(text, i);
    out.push({ key, json: text.slice(i, valueEnd) });
    i = skipWhitespace(text, valueEnd);
    if (text[i] === '}') return out;
    i++; // past ','
  }
}
