import { FactOperator, type FactFilter, type Filter } from '../../gen/baton/v1/filter';
import { InvalidArgumentError, type FieldViolation } from '../../lib/errors';
import { asText, evaluate, factAt, FilterSyntaxError, parseCompound, type FilterExpr } from '../../lib/filter-language';
import { runDiscovery } from './discovery-plan';
import { factNumber, type IndexedNode, type NodeIndex } from './node-index';

/**
 * Discovery: evaluating a Filter (proto/baton/v1/filter.proto) against the node index, with
 * Choria's semantics (choria-tasks.md §6.4): identities are ORed, classes, facts and agents
 * are ANDed, and every non-empty kind must match.
 */

/** A compiled filter: true for the nodes it selects. */
export type NodeMatcher = (node: IndexedNode) => boolean;

/** Options of `discoverNodes`. */
export interface DiscoverOptions {
  /** Also select nodes that are not online (flag cleared or heartbeat stale); default false. */
  includeOffline?: boolean;
  /** The current time in ms, for liveness; default Date.now(). */
  nowMs?: number;
}

/** A compiled identity, class or agent entry. */
export type StringMatcher = (s: string) => boolean;

/** True for a `/regex/` entry of a filter. */
export function isRegexEntry(entry: string): boolean {
  return entry.length >= 2 && entry.startsWith('/') && entry.endsWith('/');
}

/** `/regex/` entries are regular expressions, anything else an exact value. */
export function compileEntry(entry: string, field: string, caseInsensitive: boolean, violations: FieldViolation[]): StringMatcher {
  if (entry.length === 0) {
    violations.push({ field, description: `${field} is empty; expected a value or a /regex/` });
    return () => false;
  }
  if (entry.length >= 2 && entry.startsWith('/') && entry.endsWith('/')) {
    const re = compileRegex(entry.slice(1, -1), caseInsensitive ? 'i' : '', field, violations);
    return (s) => re.test(s);
  }
  if (caseInsensitive) {
    const folded = entry.toLowerCase();
    return (s) => s.toLowerCase() === folded;
  }
  return (s) => s === entry;
}

function compileRegex(source: string, flags: string, field: string, violations: FieldViolation[]): RegExp {
  try {
    return new RegExp(source, flags);
  } catch (err) {
    violations.push({ field, description: `${field} /${source}/ is not a valid regular expression: ${(err as Error).message}` });
    return /(?!)/;
  }
}

/** The index and the in-memory matcher read numbers alike (node-index.ts `factNumber`). */
const asNumber = factNumber;

/** Compiles one fact comparison; problems are appended to `violations`. */
export function compileFact(f: FactFilter, field: string, violations: FieldViolation[]): NodeMatcher {
  if (f.fact.trim() === '') violations.push({ field: `${field}.fact`, description: `${field}.fact is empty; expected a dotted fact path such as os.family` });
  const op = f.operator;
  if (op === FactOperator.FACT_OPERATOR_MATCHES) {
    // The value is a regex without slashes; one written with them is accepted too.
    const source = f.value.length >= 2 && f.value.startsWith('/') && f.value.endsWith('/') ? f.value.slice(1, -1) : f.value;
    const re = compileRegex(source, 'i', `${field}.value`, violations);
    return (node) => {
      const v = factAt(node.facts, f.fact);
      return v !== undefined && v !== null && re.test(asText(v));
    };
  }
  const compare = ORDERINGS[op];
  if (!compare) {
    violations.push({ field: `${field}.operator`, description: `${field}.operator is not set; expected one of ==, !=, =~, <, <=, >, >=` });
    return () => false;
  }
  const wantNumber = asNumber(f.value);
  const wantText = f.value.toLowerCase();
  return (node) => {
    const v = factAt(node.facts, f.fact);
    if (v === undefined || v === null) return false; // a missing fact never matches, not even with !=
    const haveNumber = asNumber(v);
    if (haveNumber !== undefined && wantNumber !== undefined) return compare(Math.sign(haveNumber - wantNumber));
    // Ordering against a number needs a numeric fact: `uptime > 5` must not match the text
    // "abc" by accident of text order, and the index's numeric zsets answer it alike.
    if (wantNumber !== undefined && op !== FactOperator.FACT_OPERATOR_NOT_EQUAL) return false;
    const haveText = asText(v).toLowerCase();
    return compare(haveText < wantText ? -1 : haveText > wantText ? 1 : 0);
  };
}

/** Each comparison operator as a test of the sign of `fact - value`. */
const ORDERINGS: Partial<Record<FactOperator, (sign: number) => boolean>> = {
  [FactOperator.FACT_OPERATOR_EQUAL]: (s) => s === 0,
  [FactOperator.FACT_OPERATOR_NOT_EQUAL]: (s) => s !== 0,
  [FactOperator.FACT_OPERATOR_LESS]: (s) => s < 0,
  [FactOperator.FACT_OPERATOR_LESS_EQUAL]: (s) => s <= 0,
  [FactOperator.FACT_OPERATOR_GREATER]: (s) => s > 0,
  [FactOperator.FACT_OPERATOR_GREATER_EQUAL]: (s) => s >= 0,
};

/** Parses one compound expression; a syntax error becomes a violation naming its column. */
export function parseCompoundEntry(text: string, field: string, violations: FieldViolation[]): FilterExpr | undefined {
  try {
    return parseCompound(text);
  } catch (err) {
    if (!(err instanceof FilterSyntaxError)) throw err;
    violations.push({ field, description: `${field}: ${err.message}` });
    return undefined;
  }
}

/**
 * Compiles a filter; an absent or empty filter selects every node. Throws InvalidArgumentError
 * listing every problem (invalid regex, unset operator, compound syntax). `bolt_task` terms are
 * false here (no run data); discovery-plan.ts answers them from the run's results.
 */
export function compileFilter(filter: Filter | undefined, prefix = 'filter'): NodeMatcher {
  if (!filter) return () => true;
  const violations: FieldViolation[] = [];
  const compound = filter.compound.map((text, i) => parseCompoundEntry(text, `${prefix}.compound[${i}]`, violations));
  const identities = filter.identities.map((e, i) => compileEntry(e, `${prefix}.identities[${i}]`, false, violations));
  const classes = filter.classes.map((e, i) => compileEntry(e, `${prefix}.classes[${i}]`, true, violations));
  const agents = filter.agents.map((e, i) => compileEntry(e, `${prefix}.agents[${i}]`, false, violations));
  const facts = filter.facts.map((f, i) => compileFact(f, `${prefix}.facts[${i}]`, violations));
  if (violations.length > 0) throw new InvalidArgumentError(violations.map((v) => v.description).join('; '), violations, 'INVALID_FILTER');
  return (node) =>
    (identities.length === 0 || identities.some((m) => m(node.identity))) &&
    classes.every((m) => node.classes.some(m)) &&
    agents.every((m) => node.agents.some(m)) &&
    facts.every((m) => m(node)) &&
    compound.every((e) => e !== undefined && evaluate(e, node));
}

/**
 * The nodes of the index a filter selects, sorted by identity; online ones only unless asked.
 * Planned against the Redis index (discovery-plan.ts), then the selected entries are loaded.
 */
export async function discoverNodes(index: NodeIndex, filter: Filter | undefined, options: DiscoverOptions = {}): Promise<IndexedNode[]> {
  const found = await runDiscovery(index, filter, { nowMs: options.nowMs, listOffline: options.includeOffline });
  const ids = options.includeOffline ? [...found.online, ...found.offline].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)) : found.online;
  return index.load(ids);
}
