import type { FactFilter, Filter } from '../../gen/baton/v1/filter';
import { InvalidArgumentError, type FieldViolation } from '../errors';
import { cut } from '../quote';
import { compareOpOf } from './fact-compare';
import type { FactTerm, FilterExpr } from './filter-expr';
import { parseCompound } from './filter-parser';
import { FilterSyntaxError } from './filter-syntax-error';
import { isRegexEntry, matchEntryTerm, regexError, type MatchEntryOf } from './single-filters';

/**
 * A request's Filter (proto/baton/v1/filter.proto) compiled into one expression of the filter
 * language, once per request: identities become an OR of IDENTITY terms, classes, agents and
 * facts AND their terms, and each compound text is parsed here and nowhere else. Discovery plans
 * that one expression against the Redis index and evaluates what the index cannot answer with
 * `evaluate`, so every -I/-C/-A/-F/-W/-S term means the same on both paths.
 */

/** Characters of a regex a message shows. */
const REGEX_SHOWN_CHARS = 60;

/** The expression selecting every node: an AND of nothing. */
export const EVERY_NODE: FilterExpr = { kind: 'AND', operands: [] };

/** The violation of a regex RE2 cannot run; undefined when it can. */
function regexViolation(source: string, caseSensitive: boolean, field: string): FieldViolation | undefined {
  const err = regexError(source, caseSensitive);
  if (!err) return undefined;
  const description = err.unsupported
    ? `/${cut(source, REGEX_SHOWN_CHARS)}/ uses ${err.unsupported}, which filters do not support (RE2 syntax, matched in linear time)`
    : `/${cut(source, REGEX_SHOWN_CHARS)}/ is not a valid regular expression: ${err.message}`;
  return { field, description };
}

/** Compiles one `-I`/`-C`/`-A` entry, or records why it cannot be. */
function entryTerm(entry: string, of: MatchEntryOf, field: string, violations: FieldViolation[]): FilterExpr | undefined {
  if (entry === '') {
    violations.push({ field, description: 'empty; expected a value or a /regex/' });
    return undefined;
  }
  const term = matchEntryTerm(entry, of, false);
  const pattern = 'pattern' in term ? term.pattern : undefined;
  const violation = pattern === undefined ? undefined : regexViolation(pattern, of !== 'CLASS', field);
  if (violation) violations.push(violation);
  return violation ? undefined : term;
}

/** Compiles one FactFilter, or records each of its problems. */
function factTerm(f: FactFilter, field: string, violations: FieldViolation[]): FactTerm | undefined {
  let ok = true;
  if (f.fact.trim() === '') {
    violations.push({ field: `${field}.fact`, description: 'empty; expected a dotted fact path such as os.family' });
    ok = false;
  }
  const operator = compareOpOf(f.operator);
  if (operator === undefined) {
    violations.push({ field: `${field}.operator`, description: 'not set; expected one of ==, !=, =~, <, <=, >, >=' });
    return undefined;
  }
  let value = f.value;
  if (operator === '=~') {
    // The value is a regex without slashes; one written with them is accepted too.
    if (isRegexEntry(value)) value = value.slice(1, -1);
    const violation = regexViolation(value, false, `${field}.value`);
    if (violation) {
      violations.push(violation);
      ok = false;
    }
  }
  return ok ? { kind: 'FACT', path: f.fact, operator, value } : undefined;
}

/** One operand per part; none is every node, one is that part. */
function all(parts: FilterExpr[]): FilterExpr {
  return parts.length === 1 ? parts[0] : { kind: 'AND', operands: parts };
}

/**
 * Compiles a Filter into one expression; an absent or empty filter is EVERY_NODE. Throws
 * InvalidArgumentError listing every problem as a violation of its field (`filter.identities[0]`,
 * `filter.facts[1].value`, `filter.compound[0]` with the column), so a request is validated here
 * once and never again. A description says what is wrong without naming the field again (a
 * client shows `field: description`); the message is those lines joined.
 */
export function compileFilter(filter: Filter | undefined, prefix = 'filter'): FilterExpr {
  if (!filter) return EVERY_NODE;
  const violations: FieldViolation[] = [];
  const compound = filter.compound.map((text, i) => {
    const field = `${prefix}.compound[${i}]`;
    try {
      return parseCompound(text);
    } catch (err) {
      if (!(err instanceof FilterSyntaxError)) throw err;
      violations.push({ field, description: err.message });
      return undefined;
    }
  });
  const identities = filter.identities.map((e, i) => entryTerm(e, 'IDENTITY', `${prefix}.identities[${i}]`, violations));
  const classes = filter.classes.map((e, i) => entryTerm(e, 'CLASS', `${prefix}.classes[${i}]`, violations));
  const agents = filter.agents.map((e, i) => entryTerm(e, 'AGENT', `${prefix}.agents[${i}]`, violations));
  const facts = filter.facts.map((f, i) => factTerm(f, `${prefix}.facts[${i}]`, violations));
  if (violations.length > 0) throw new InvalidArgumentError(violations.map((v) => `${v.field}: ${v.description}`).join('; '), violations, 'INVALID_FILTER');
  const defined = (list: Array<FilterExpr | undefined>): FilterExpr[] => list.filter((e): e is FilterExpr => e !== undefined);
  const parts: FilterExpr[] = [];
  // Choria's rule: several identities are ORed, everything else is ANDed.
  if (identities.length > 0) parts.push(identities.length === 1 ? identities[0]! : { kind: 'OR', operands: defined(identities) });
  parts.push(...defined(classes), ...defined(agents), ...defined(facts));
  for (const expr of defined(compound)) parts.push(...(expr.kind === 'AND' ? expr.operands : [expr]));
  return all(parts);
}
