import { FactOperator } from '../../gen/baton/v1/filter';
import type { CompareOp } from './filter-expr';

/**
 * Comparing a node's value (a fact, or a `bolt_task` field) with the text of a filter
 * (choria-tasks.md §6.3, §6.4), shared by the in-memory evaluator and the scheduler:
 *
 * - a missing value (undefined or null) never matches, not even with `!=` (§6.4);
 * - numbers compare numerically when both sides read as numbers (`"1.0" == 1`);
 * - booleans and strings compare case-insensitively for `==` / `!=`; `<`, `<=`, `>`, `>=` are
 *   false unless both sides are numbers (the legacy rule, §6.3: ordering is not allowed on
 *   strings or booleans);
 * - `=~` / `!~` test a case-insensitive regular expression against the value's text;
 * - objects and arrays compare by their JSON text.
 */

const NUMBER = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;

/** A value as a number, when it is one or is text that reads as one. */
export function asNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isNaN(v) ? undefined : v;
  if (typeof v === 'string' && NUMBER.test(v)) return Number(v);
  return undefined;
}

/** A value's text, as compared by equality and regular expressions. */
export function asText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return JSON.stringify(v) ?? '';
}

/** Most compiled regular expressions kept, so evaluating many nodes compiles each once. */
const REGEX_CACHE_MAX_ENTRIES = 1000;
const regexCache = new Map<string, RegExp>();

/** A case-insensitive RegExp for `source`; throws SyntaxError when it is not one. */
export function filterRegex(source: string): RegExp {
  let re = regexCache.get(source);
  if (!re) {
    re = new RegExp(source, 'i');
    if (regexCache.size >= REGEX_CACHE_MAX_ENTRIES) regexCache.clear();
    regexCache.set(source, re);
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
 * True when `actual <op> operand` holds under the rules above. `operand` is the filter's text
 * (for `=~`/`!~` the regex source, without slashes). An invalid regex or an unset operator is
 * false: parsers reject both before anything is evaluated.
 */
export function compareFact(actual: unknown, op: CompareOp | FactOperator, operand: string): boolean {
  const cop = typeof op === 'number' ? compareOpOf(op) : op;
  if (cop === undefined || actual === undefined || actual === null) return false;
  if (cop === '=~' || cop === '!~') {
    let re: RegExp;
    try {
      re = filterRegex(operand);
    } catch {
      return false;
    }
    return re.test(asText(actual)) === (cop === '=~');
  }
  const have = asNumber(actual);
  const want = asNumber(operand);
  if (have !== undefined && want !== undefined) {
    switch (cop) {
      case '==':
        return have === want;
      case '!=':
        return have !== want;
      case '<':
        return have < want;
      case '<=':
        return have <= want;
      case '>':
        return have > want;
      case '>=':
        return have >= want;
    }
  }
  if (cop === '==' || cop === '!=') {
    const equal = asText(actual).toLowerCase() === operand.toLowerCase();
    return equal === (cop === '==');
  }
  return false; // ordering on strings, booleans or a number against a non-number (§6.3)
}

/** Looks up a dotted fact path (`os.family`, `disks.0.size`); a fact named with the dots literally wins. */
export function factAt(facts: Record<string, unknown>, path: string): unknown {
  if (Object.hasOwn(facts, path)) return facts[path];
  let cur: unknown = facts;
  for (const segment of path.split('.')) {
    if (typeof cur !== 'object' || cur === null || !Object.hasOwn(cur, segment)) return undefined;
    cur = (cur as Record<string, unknown>)[segment];
  }
  return cur;
}
