import { FactOperator } from '../../gen/baton/v1/filter';
import { linearRegex, type LinearRegex } from '../linear-regex';
import { asText, readNumber } from './fact-values';
import type { CompareOp } from './filter-expr';

/**
 * Comparing a node's value (a fact, or a `bolt_task` field) with the text of a filter, the one
 * rule every filter form (`-F`, `-W`, `-S`, the proto FactFilter) and both discovery paths (the
 * Redis index and the in-memory evaluator) follow. docs/filters.md gives the reasons:
 *
 * - a missing value (undefined or null) never matches, not even with `!=` (docs/choria-compat.md §6.4);
 * - when both sides read as numbers (readNumber: finite, from a number or numeric text) they
 *   compare numerically (`"1.0" == 1`, `"32" > 8`);
 * - ordering needs two numbers or two texts: a number against text is false either way
 *   (`uptime > 5` never matches the text "abc", `uptime > abc` never matches 5);
 * - text compares case-insensitively, also when ordered (`env >= p` holds for `production`), by
 *   Unicode code point of the lowercased text, as Choria's Go discovery orders strings;
 * - booleans compare as the text `true` / `false` for `==` and `!=` and are never ordered;
 * - objects and arrays match no comparison but a regex, which tests their JSON text;
 * - `=~` / `!~` test a case-insensitive linear-time regex (lib/linear-regex.ts) against the text.
 */

/** Most compiled regular expressions kept, so evaluating many nodes compiles each once. */
const REGEX_CACHE_MAX_ENTRIES = 1000;
const regexCache = new Map<string, LinearRegex>();

/**
 * The compiled filter regex for `source` (case-insensitive unless `caseSensitive`), compiled once
 * per process while it stays in the cache. Throws RegexSyntaxError when RE2 cannot run it.
 */
export function filterRegex(source: string, caseSensitive = false): LinearRegex {
  const key = (caseSensitive ? 's' : 'i') + source;
  let re = regexCache.get(key);
  if (!re) {
    re = linearRegex(source, { caseInsensitive: !caseSensitive, automaton: true });
    if (regexCache.size >= REGEX_CACHE_MAX_ENTRIES) regexCache.clear();
    regexCache.set(key, re);
  }
  return re;
}

const FROM_FACT_OPERATOR: Partial<Record<FactOperator, CompareOp>> = {
  [FactOperator.FACT_OPERATOR_EQUAL]: '==',
  [FactOperator.FACT_OPERATOR_NOT_EQUAL]: '!=',
  [FactOperator.FACT_OPERATOR_MATCHES]: '=~',
  [FactOperator.FACT_OPERATOR_LESS]: '<',
  [FactOperator.FACT_OPERATOR_LESS_EQUAL]: '<=',
  [FactOperator.FACT_OPERATOR_GREATER]: '>',
  [FactOperator.FACT_OPERATOR_GREATER_EQUAL]: '>=',
};

/** The CompareOp of a proto FactOperator; undefined for UNSPECIFIED / UNRECOGNIZED. */
export function compareOpOf(op: FactOperator): CompareOp | undefined {
  return FROM_FACT_OPERATOR[op];
}

/** The proto FactOperator of a CompareOp; undefined for `!~`, which the proto cannot say. */
export function factOperatorOf(op: CompareOp): FactOperator | undefined {
  for (const [k, v] of Object.entries(FROM_FACT_OPERATOR)) if (v === op) return Number(k);
  return undefined;
}

/**
 * Orders two strings by Unicode code point (UTF-16 code units order astral characters below
 * U+E000-U+FFFF; moving the surrogates above that range gives code point order).
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

function codePointRank(unit: number): number {
  if (unit >= 0xe000) return unit - 0x800;
  if (unit >= 0xd800) return unit + 0x2000;
  return unit;
}

/** True when a sign of `value - operand` satisfies an ordering or equality operator. */
function holds(op: Exclude<CompareOp, '=~' | '!~'>, sign: number): boolean {
  switch (op) {
    case '==':
      return sign === 0;
    case '!=':
      return sign !== 0;
    case '<':
      return sign < 0;
    case '<=':
      return sign <= 0;
    case '>':
      return sign > 0;
    case '>=':
      return sign >= 0;
  }
}

/**
 * True when `actual <op> operand` holds under the rules above. `operand` is the filter's text
 * (for `=~`/`!~` the regex source, without slashes). An invalid regex or an unset operator is
 * false: the compilers reject both before anything is evaluated.
 */
export function compareFact(actual: unknown, op: CompareOp | FactOperator, operand: string): boolean {
  const cop = typeof op === 'number' ? compareOpOf(op) : op;
  if (cop === undefined || actual === undefined || actual === null) return false;
  if (cop === '=~' || cop === '!~') {
    let re: LinearRegex;
    try {
      re = filterRegex(operand);
    } catch {
      return false;
    }
    return re.test(asText(actual)) === (cop === '=~');
  }
  if (typeof actual === 'object') return false;
  const have = readNumber(actual);
  const want = readNumber(operand);
  if (have !== undefined && want !== undefined) return holds(cop, have < want ? -1 : have > want ? 1 : 0);
  const haveText = asText(actual).toLowerCase();
  const wantText = operand.toLowerCase();
  if (cop === '==' || cop === '!=') return holds(cop, haveText === wantText ? 0 : 1);
  // Ordering needs two numbers or two texts: a number against text, or a boolean, is neither.
  if (want !== undefined || have !== undefined || typeof actual === 'boolean') return false;
  return holds(cop, compareCodePoints(haveText, wantText));
}
