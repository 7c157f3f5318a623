import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { FactFilter, Filter } from '../gen/baton/v1/filter';
import { factOperatorOf, FilterSyntaxError, parseCompound, parseFactFilter, parseWithFilter } from '../lib/filter-language';
import { CliError, EXIT } from './cli-error';

/** The node-selection flags shared by `baton discover` and `baton tasks run` (docs/choria-compat.md §6.4). */
export interface FilterOptions {
  withIdentity?: string[];
  withClass?: string[];
  withFact?: string[];
  withAgent?: string[];
  with?: string[];
  select?: string[];
  /** `--nodes FILE`: one identity per line, `-` for stdin. */
  nodes?: string;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Heading of the filter flags in `--help`. */
const FILTERS_GROUP = 'Node filters:';

/** Adds `-I -C -F -A -W -S` (each may be repeated) and `--nodes FILE` to a command. */
export function addFilterOptions(command: Command): Command {
  command.optionsGroup(FILTERS_GROUP);
  command
    .option('-I, --with-identity <IDENTITY>', 'node identity or /regex/, or several identities separated by commas; repeat to add more (OR)', collect)
    .option('--nodes <FILE>', 'identities, one per line (blank lines and # comments skipped); - reads stdin; ORed with -I', undefined)
    .option('-C, --with-class <CLASS>', 'Puppet class or /regex/; repeat to require more (AND)', collect)
    .option('-F, --with-fact <FACT=VALUE>', 'fact comparison (==, !=, =~, <, <=, >, >=); repeat (AND)', collect)
    .option('-A, --with-agent <AGENT>', 'agent the node must offer; repeat (AND)', collect)
    .option('-W, --with <FILTER>', 'classes and fact comparisons separated by blanks, all required; repeat (AND)', collect)
    .option(
      '-S, --select <EXPRESSION>',
      'compound expression, e.g. "role::web and not os.family=windows" or "bolt_task(\'<id>\').exitcode > 0"; repeat (AND)',
      collect,
    );
  return command.optionsGroup('Options:');
}

/**
 * The identities `-I` names: a `/regex/` as it is (it may hold commas), anything else split
 * at commas (`-I web1,web2`), as mco and Bolt take a target list.
 */
export function identitiesOf(values: string[]): string[] {
  return values.flatMap((v) =>
    /^\/.*\/$/s.test(v)
      ? [v]
      : v
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean),
  );
}

/** The identities of a `--nodes` file (`-` is stdin): one per line, blank lines and `#` comments skipped. */
export function readNodesFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new CliError(`--nodes ${file}: cannot read it: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const names = text
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter(Boolean);
  const bad = names.findIndex((n) => /\s/.test(n));
  if (bad >= 0) throw new CliError(`--nodes ${file}: line '${names[bad].slice(0, 80)}' is not one identity; expected one identity per line`);
  if (names.length === 0) throw new CliError(`--nodes ${file}: no identity in it; expected one identity per line`);
  return names;
}

/** One flag value's syntax error as one line naming the flag, the column and what was expected. */
function usage(flag: string, err: unknown): never {
  if (err instanceof FilterSyntaxError) throw new CliError(`${flag}: ${err.message}`, EXIT.USAGE);
  throw err;
}

/** Parses one `-F` value into the proto FactFilter; exits with a usage error naming the column. */
export function parseFactOption(text: string): FactFilter {
  try {
    return parseFactFilter(text);
  } catch (err) {
    return usage(`-F '${text}' is not a fact filter; expected FACT=VALUE or FACT<op>VALUE with op one of == != =~ < <= > >=`, err);
  }
}

/** The proto Filter the flags describe; `-S` expressions are checked here first so errors come before any call. */
export function filterFromOptions(options: FilterOptions): Filter {
  const filter: Filter = {
    identities: [...identitiesOf(options.withIdentity ?? []), ...(options.nodes !== undefined ? readNodesFile(options.nodes) : [])],
    classes: [...(options.withClass ?? [])],
    facts: (options.withFact ?? []).map(parseFactOption),
    agents: [...(options.withAgent ?? [])],
    compound: [],
  };
  for (const text of options.with ?? []) {
    let items;
    try {
      items = parseWithFilter(text);
    } catch (err) {
      usage(`-W '${text}'`, err);
    }
    for (const item of items) {
      if (item.kind === 'CLASS') filter.classes.push(item.name);
      else if (item.kind === 'CLASS_REGEX') filter.classes.push(`/${item.pattern}/`);
      else {
        const operator = factOperatorOf(item.operator);
        // `!= /re/` has no FactFilter operator; the compound form says the same thing.
        if (operator === undefined) filter.compound.push(`${item.path} != /${item.value}/`);
        else filter.facts.push({ fact: item.path, operator, value: item.value });
      }
    }
  }
  for (const text of options.select ?? []) {
    try {
      parseCompound(text);
    } catch (err) {
      usage('-S', err);
    }
    filter.compound.push(text);
  }
  return filter;
}
