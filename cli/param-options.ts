import { Option, type Command } from 'commander';
import type { Parameter } from '../gen/baton/v1/task';
import { CliError } from './cli-error';

/** How a task parameter is typed on the command line (after mco's `puppet_type_to_ruby`, choria-tasks.md §4.2). */
export type FlagKind = 'STRING' | 'NUMBER' | 'BOOLEAN' | 'JSON';

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
  if (/^(Integer|Float|Numeric)\b/.test(type)) return 'NUMBER';
  if (/^(Hash|Struct|Tuple)\b/.test(type)) return 'JSON';
  return 'STRING';
}

/**
 * Makes one flag per task parameter, sorted by name. A parameter whose name clashes with one of
 * `baton tasks run`'s own options (a task with a `timeout` parameter is common) becomes
 * `--param-<name>`; `--input` can always set any parameter.
 */
export function paramFlags(parameters: Parameter[], reserved: Set<string>): ParamFlag[] {
  return [...parameters]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((parameter) => {
      const inner = innerType(parameter.type);
      const array = /^Array\b/.test(inner);
      const element = array ? innerType(/^Array\[(.*?)(?:,\s*\d+.*)?\]$/s.exec(inner)?.[1] ?? 'Data') : inner;
      const name = parameter.name.toLowerCase();
      return { parameter, flag: reserved.has(name) ? `param-${name}` : name, kind: kindOf(element), repeatable: array };
    });
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
      command.addOption(new Option(`--${f.flag} <${metavar}>`, description).argParser((v: string, prev: unknown) => (f.repeatable ? [...((prev as unknown[] | undefined) ?? []), v] : v)));
    }
  }
}

function convert(f: ParamFlag, raw: string): unknown {
  switch (f.kind) {
    case 'NUMBER': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) throw new CliError(`--${f.flag} expects a number (${f.parameter.type}), got '${raw}'`);
      return n;
    }
    case 'BOOLEAN':
      if (raw === 'true') return true;
      if (raw === 'false') return false;
      throw new CliError(`--${f.flag} expects true or false, got '${raw}'`);
    case 'JSON':
      try {
        return JSON.parse(raw) as unknown;
      } catch (err) {
        throw new CliError(`--${f.flag} expects JSON (${f.parameter.type}): ${(err as Error).message}`);
      }
    default:
      return raw;
  }
}

/** Reads the parameter flags that were given into an input object (flags override `--input`). */
export function inputFromFlags(flags: ParamFlag[], options: Record<string, unknown>): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const f of flags) {
    const key = f.flag.replace(/-([a-z])/g, (_, ch: string) => ch.toUpperCase()); // commander camel-cases dashed names
    const raw = options[key];
    if (raw === undefined) continue;
    if (typeof raw === 'boolean') input[f.parameter.name] = raw;
    else if (Array.isArray(raw)) input[f.parameter.name] = raw.map((v) => convert(f, String(v)));
    else if (typeof raw === 'string') input[f.parameter.name] = convert(f, raw);
  }
  return input;
}
