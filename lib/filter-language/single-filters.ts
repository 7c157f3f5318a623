import type { FactOperator } from '../../gen/baton/v1/filter';
import { factOperatorOf, filterRegex } from './fact-compare';
import { RegexSyntaxError } from '../linear-regex';
import type { AgentRegexTerm, AgentTerm, ClassRegexTerm, ClassTerm, CompareOp, FactTerm, IdentityRegexTerm, IdentityTerm } from './filter-expr';
import { FilterSyntaxError } from './filter-syntax-error';
import { normalizeRegexSource } from './filter-tokenizer';

/**
 * The single-flag filter forms shared by the CLI and the scheduler (docs/choria-compat.md §6.4):
 * `-F fact<op>value`, `-W "a b=c"`, and the exact-or-`/regex/` entries of `-I`, `-C`, `-A`.
 */

/** `-F` operators, longest first; `=` → `==`, `=<` → `<=`, `=>` → `>=` (docs/choria-compat.md §6.4). */
const FACT_OPERATORS: readonly [string, CompareOp][] = [
  ['==', '=='],
  ['=~', '=~'],
  ['!=', '!='],
  ['<=', '<='],
  ['>=', '>='],
  ['=<', '<='],
  ['=>', '>='],
  ['<', '<'],
  ['>', '>'],
  ['=', '=='],
];

/** True when an entry is written `/regex/`. */
export function isRegexEntry(text: string): boolean {
  return text.length >= 2 && text.startsWith('/') && text.endsWith('/');
}

/** An `-I` / `-C` / `-A` entry: an exact value, or a regular expression (source without slashes). */
export type MatchEntry = { kind: 'EXACT'; value: string } | { kind: 'REGEX'; pattern: string };

/**
 * Parses an `-I`/`-C`/`-A` entry (a regex's `\/` read as `/`, as between the slashes of `-S`);
 * throws FilterSyntaxError for an empty entry or (unless `check` is false, for a caller that
 * reports it itself) a regex RE2 cannot run.
 */
export function parseMatchEntry(text: string, caseSensitive = false, check = true): MatchEntry {
  if (text.length === 0) throw new FilterSyntaxError(text, 1, 'a value or a /regex/');
  if (!isRegexEntry(text)) return { kind: 'EXACT', value: text };
  const pattern = normalizeRegexSource(text.slice(1, -1));
  const problem = check ? regexProblem(pattern, caseSensitive) : undefined;
  if (problem) throw new FilterSyntaxError(text, 2, problem);
  return { kind: 'REGEX', pattern };
}

/** What an `-I`, `-C` or `-A` entry names. */
export type MatchEntryOf = 'IDENTITY' | 'CLASS' | 'AGENT';

/**
 * The term of an `-I`/`-C`/`-A` entry, or of an `identity('…')` / `agent('…')` argument
 * (docs/choria-compat.md §6.4: identities and agents exact or a case-sensitive regex, classes
 * case-folded exact or a case-insensitive regex). Throws FilterSyntaxError like parseMatchEntry.
 */
export function matchEntryTerm(
  text: string,
  of: MatchEntryOf,
  check = true,
): IdentityTerm | IdentityRegexTerm | ClassTerm | ClassRegexTerm | AgentTerm | AgentRegexTerm {
  const entry = parseMatchEntry(text, of !== 'CLASS', check);
  if (entry.kind === 'REGEX')
    return of === 'IDENTITY'
      ? { kind: 'IDENTITY_REGEX', pattern: entry.pattern }
      : of === 'AGENT'
        ? { kind: 'AGENT_REGEX', pattern: entry.pattern }
        : { kind: 'CLASS_REGEX', pattern: entry.pattern };
  return of === 'IDENTITY'
    ? { kind: 'IDENTITY', name: entry.value }
    : of === 'AGENT'
      ? { kind: 'AGENT', name: entry.value }
      : { kind: 'CLASS', name: entry.value };
}

/** Why `source` is not a regex filters can run (RE2 syntax, lib/linear-regex.ts); undefined when it is one. */
export function regexError(source: string, caseSensitive = false): RegexSyntaxError | undefined {
  try {
    filterRegex(source, caseSensitive);
    return undefined;
  } catch (err) {
    if (err instanceof RegexSyntaxError) return err;
    throw err;
  }
}

/** What was expected instead of `source` when it is not a regex filters can run; undefined when it is one. */
export function regexProblem(source: string, caseSensitive = false): string | undefined {
  const err = regexError(source, caseSensitive);
  if (!err) return undefined;
  if (err.unsupported) return `a regular expression without ${err.unsupported} (filters are RE2 syntax, matched in linear time)`;
  return `a valid regular expression (${err.message})`;
}

/** Throws FilterSyntaxError unless `source` is a valid regular expression. */
export function checkRegex(expression: string, column: number, source: string): void {
  const problem = regexProblem(source);
  if (problem) throw new FilterSyntaxError(expression, column, problem);
}

/**
 * Splits `fact<op>value` into a FactTerm, or returns why it is not one (with the column). The
 * operator is the LEFT-most one (longest at that place). Choria takes the right-most
 * (docs/choria-compat.md §6.4), which breaks values that contain an operator character
 * (`name=~/a=b/`, `url==http://h?a=b`); fact names never contain one, so the left-most split reads
 * every such filter as meant.
 */
function splitFact(text: string): FactTerm | { column: number; expected: string } {
  for (let i = 0; i < text.length; i++) {
    const found = FACT_OPERATORS.find(([o]) => text.startsWith(o, i));
    if (!found) continue;
    const [written, op] = found;
    const path = text.slice(0, i).trim();
    if (path === '') return { column: 1, expected: 'a fact name before the operator' };
    const valueAt = i + written.length;
    const value = text.slice(valueAt).trim();
    const valueColumn = valueAt + (text.slice(valueAt).length - text.slice(valueAt).trimStart().length) + 1;
    if (value === '') return { column: text.length + 1, expected: `a value after '${written}'` };
    if (isRegexEntry(value)) {
      const pattern = normalizeRegexSource(value.slice(1, -1));
      if (op !== '==' && op !== '!=' && op !== '=~')
        return { column: valueColumn, expected: `a number or text after '${written}' (a /regex/ goes with ==, = or =~)` };
      const problem = regexProblem(pattern);
      if (problem) return { column: valueColumn + 1, expected: problem };
      return { kind: 'FACT', path, operator: op === '!=' ? '!~' : '=~', value: pattern };
    }
    const problem = op === '=~' ? regexProblem(value) : undefined;
    if (problem) return { column: valueColumn, expected: problem };
    return { kind: 'FACT', path, operator: op, value };
  }
  return { column: text.length + 1, expected: 'an operator (== = != < > <= >= =< => =~) and a value' };
}

/** Parses `fact<op>value` into a FactTerm (the AST form); throws FilterSyntaxError. */
export function parseFactTerm(text: string): FactTerm {
  const r = splitFact(text);
  if ('kind' in r) return r;
  throw new FilterSyntaxError(text, r.column, r.expected);
}

/** A `-F` filter in the proto's shape (`FactFilter` of proto/baton/v1/filter.proto). */
export interface ParsedFactFilter {
  fact: string;
  operator: FactOperator;
  value: string;
}

/**
 * Parses `-F` values like Choria (docs/choria-compat.md §6.4): `os.family=Debian`,
 * `memory>=4096`, `name=~/^web/`, `kernel=/linux/` (a regex value with `=`/`==` means match). `!= /re/` is rejected: the proto
 * has no "does not match" operator (use `-S "not name =~ /re/"`, which also matches nodes
 * without the fact). Throws FilterSyntaxError.
 */
export function parseFactFilter(text: string): ParsedFactFilter {
  const term = parseFactTerm(text);
  const operator = factOperatorOf(term.operator);
  if (operator === undefined)
    throw new FilterSyntaxError(text, text.indexOf('!=') + 1, "== or =~ before a /regex/ value (a fact filter cannot negate a regex; use -S 'not …')");
  return { fact: term.path, operator, value: term.value };
}

/**
 * One `-W` item or `with('…')` argument (docs/choria-compat.md §6.4): a whole `/regex/` is a class
 * regex; otherwise a fact filter if it parses as one, else a class name. Throws FilterSyntaxError
 * for an empty item or an invalid class regex.
 */
export function parseWithItem(item: string): FactTerm | ClassTerm | ClassRegexTerm {
  if (item === '') throw new FilterSyntaxError(item, 1, 'a class or a fact filter');
  if (isRegexEntry(item)) {
    const pattern = normalizeRegexSource(item.slice(1, -1));
    checkRegex(item, 2, pattern);
    return { kind: 'CLASS_REGEX', pattern };
  }
  const r = splitFact(item);
  return 'kind' in r ? r : { kind: 'CLASS', name: item };
}

/** Parses `-W "a b=c"`: blank-separated items, each per `parseWithItem`; all must match. */
export function parseWithFilter(text: string): (FactTerm | ClassTerm | ClassRegexTerm)[] {
  const items = text.split(/\s+/).filter((s) => s !== '');
  if (items.length === 0) throw new FilterSyntaxError(text, 1, 'at least one class or fact filter');
  return items.map(parseWithItem);
}
