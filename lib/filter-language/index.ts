/**
 * Baton's filter language (docs/choria-compat.md §6.3, §6.4; docs/filters.md): parse `-S` compound
 * expressions and the single-flag forms (`-F`, `-W`, `-I`/`-C`/`-A` entries), compile a request's
 * Filter into one expression, compare facts, evaluate in memory, print, and walk expressions for
 * query planning.
 */
export {
  BOLT_TASK_FIELDS,
  COMPARE_OPS,
  type AgentRegexTerm,
  type AgentTerm,
  type AndExpr,
  type BoltTaskField,
  type BoltTaskTerm,
  type ClassRegexTerm,
  type ClassTerm,
  type CompareOp,
  type FactTerm,
  type FilterExpr,
  type FilterTerm,
  type IdentityRegexTerm,
  type IdentityTerm,
  type NotExpr,
  type OrExpr,
} from './filter-expr';
export { FilterSyntaxError } from './filter-syntax-error';
export { parseCompound, isKeyword, MAX_FILTER_DEPTH, MAX_FILTER_LENGTH_CHARS } from './filter-parser';
export { formatExpr, formatTerm } from './format-expr';
export { foldExpr, termsOf, referencedTaskIds, type ExprFolder } from './expr-visitor';
export { evaluate, evaluateTerm, NO_TASK_RESULTS, type BoltTaskLookup, type BoltTaskResultFields, type NodeView } from './evaluate';
export { compareFact, compareOpOf, factOperatorOf, filterRegex } from './fact-compare';
export { asText, factAt, indexText, readNumber, scalarFacts, type ScalarFact } from './fact-values';
export { compileFilter, EVERY_NODE } from './filter-query';
export {
  parseFactFilter,
  parseFactTerm,
  parseWithFilter,
  parseWithItem,
  parseMatchEntry,
  matchEntryTerm,
  isRegexEntry,
  type MatchEntry,
  type MatchEntryOf,
  type ParsedFactFilter,
} from './single-filters';
