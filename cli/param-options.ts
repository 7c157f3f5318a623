import { Option, type Command } from 'commander';
import type { Parameter } from '../gen/baton/v1/task';
import type { Task } from '../gen/baton/v1/task';
import { JsonSyntaxError, parseJsonLexemes } from '../lib/puppet-types';
import { DEFAULT_ENVIRONMENT } from '../lib/names';
import { coerceTaskParameter } from '../lib/task-input';
import { CliError } from './cli-error';

/** How a task parameter is typed on the command line (after mco's `puppet_type_to_ruby`, docs/choria-compat.md §4.2). */
export type FlagKind = 'STRING' | 'BOOLEAN' | 'JSON';

/** One command-line flag made from a task parameter. */
export interface ParamFlag {
  parameter: Parameter;
  /** The long flag without dashes, e.g. `message` or `param-timeout` on a clash. */
  flag: string;
  kind: FlagKind;
  /** True for `Array[...]` types: the flag may repeat and its values are collected. */
  repeatable: boolean;
}

/** The outer type with `Optional[...]` and `Sensitive[...]` removed: `Optional[Array[Integer]]` → `Array[Integer]`. */
function innerType(type: string): string {
  let t = type.trim();
  for (;;) {
    const m = /^(?:Optional|Sensitive)\[(.*)\]$/s.exec(t);
    if (!m) return t;
    t = m[1].trim();
  }
}

function kindOf(type: string): FlagKind {
  if (/^Boolean\b/.test(type)) return 'BOOLEAN';
  if (/^(Hash|Struct|Tuple)\b/.test(type)) return 'JSON';
  return 'STRING';
}

/**
 * Makes one flag per task parameter, sorted by name. A parameter whose name clashes with one of
 * `baton tasks run`'s own options (a task with a `timeout` parameter is common) becomes
 * `--param-<name>`; `--input` can always set any parameter.
 */
export function paramFlags(parameters: Parameter[], reserved: Set<string>): ParamFlag[] {
  // Code-unit order (parameter names are ASCII): localeCompare's first call loads ICU's
  // collation data, a noticeable part of a short command's start-up.
  return [...parameters]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((parameter) => {
      const inner = innerType(parameter.type);
      const array = /^Array\b/.test(inner);
      const element = array ? innerType(/^Array\[(.*?)(?:,\s*\d+.*)?\]$/s.exec(inner)?.[1] ?? 'Data') : inner;
      const name = parameter.name.toLowerCase();
      return { parameter, flag: reserved.has(name) ? `param-${name}` : name, kind: kindOf(element), repeatable: array };
    });
}

/**
 * How to run `task` in one line: its name, `-E ENV` unless the environment is the default, and
 * its flags (optional ones in brackets), e.g. `acme::deploy -E staging --version VERSION [--force]`.
 */
export function taskUsage(task: Task, environment: string, flags: ParamFlag[]): string {
  const usage = flags.map((f) => {
    const value = f.kind === 'BOOLEAN' && !f.repeatable ? `--[no-]${f.flag}` : `--${f.flag} ${f.kind === 'JSON' ? 'JSON' : f.parameter.name.toUpperCase()}`;
    return f.parameter.required && f.parameter.defaultValue === undefined ? value : `[${value}]`;
  });
  return [task.name, ...(environment === DEFAULT_ENVIRONMENT ? [] : ['-E', environment]), ...usage].join(' ');
}

/** Adds the parameter flags to a command. */
export function addParamOptions(command: Command, flags: ParamFlag[]): void {
  for (const f of flags) {
    const p = f.parameter;
    const description = `${p.description ? `${p.description} ` : ''}(${p.type})${f.repeatable ? ', repeat for more' : ''}`;
    if (f.kind === 'BOOLEAN' && !f.repeatable) {
      command.addOption(new Option(`--${f.flag}`, description));
      command.addOption(new Option(`--no-${f.flag}`, `set ${p.name} to false`));
    } else {
      const metavar = f.kind === 'JSON' ? 'JSON' : p.name.toUpperCase();
      command.addOption(
        new Option(`--${f.flag} <${metavar}>`, description).argParser((v: string, prev: unknown) =>
          f.repeatable ? [...((prev as unknown[] | undefined) ?? []), v] : v,
        ),
      );
    }
  }
}

/**
 * Reads the parameter flags that were given, as JSON text per parameter name. Each value goes
 * through the shared Bolt coercion (docs/task-format.md §8, `coerceTaskParameter`): JSON when the
 * parsed value matches the parameter's type, the string otherwise; the scheduler then validates it
 * with the full type system and words any mismatch in Puppet's terms. Repeated flags of an Array
 * parameter become one array.
 */
export function inputFromFlags(task: Task, flags: ParamFlag[], options: Record<string, unknown>): Map<string, string> {
  const input = new Map<string, string>();
  for (const f of flags) {
    const key = f.flag.replace(/-([a-z])/g, (_, ch: string) => ch.toUpperCase()); // commander camel-cases dashed names
    const raw = options[key];
    const name = f.parameter.name;
    if (typeof raw === 'boolean') input.set(name, JSON.stringify(raw));
    else if (typeof raw === 'string') {
      if (f.kind === 'JSON') checkJson(f.flag, raw);
      input.set(name, coerceTaskParameter(task, name, raw));
    } else if (Array.isArray(raw)) input.set(name, coerceRepeated(task, f.flag, name, raw.map(String)));
  }
  return input;
}

/**
 * A value that can only be JSON (a Hash, Struct or Tuple flag, or one whole JSON array) must
 * parse: otherwise it would travel as a String and be refused as one, hiding the typo.
 */
function checkJson(flag: string, raw: string): void {
  try {
    parseJsonLexemes(raw);
  } catch (err) {
    if (!(err instanceof JsonSyntaxError)) throw err;
    throw new CliError(`--${flag}: could not parse JSON '${raw.length > 60 ? `${raw.slice(0, 60)}...` : raw}': ${err.message}`);
  }
}

/**
 * `--ports 80 --ports 443`: `[80,443]`, each value taken as JSON where it parses and as a
 * string otherwise, so a type error names the element as given and at its index
 * (`--numbers 1 --numbers x` is refused at index 1); a single value may be a whole JSON array.
 */
function coerceRepeated(task: Task, flag: string, name: string, raws: string[]): string {
  if (raws.length === 1 && raws[0].trimStart().startsWith('[')) {
    checkJson(flag, raws[0]);
    return coerceTaskParameter(task, name, raws[0]);
  }
  const elements = raws.map((r) => {
    try {
      JSON.parse(r);
      return r;
    } catch {
      return JSON.stringify(r);
    }
  });
  const coerced = coerceTaskParameter(task, name, `[${elements.join(',')}]`);
  return coerced.startsWith('[') ? coerced : JSON.stringify(raws);
}
