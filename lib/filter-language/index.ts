/**
 * Baton's filter language (issue 5; choria-tasks.md §6.3, §6.4): parse `-S` compound
 * expressions and the single-flag forms (`-F`, `-W`, `-I`/`-C`/`-A` entries), compare facts,
 * evaluate in memory, print, and walk expressions for query planning.
 */
export { BOLT_TASK_FIELDS, COMPARE_OPS, type AndExpr, type BoltTaskField, type BoltTaskTerm, type ClassRegexTerm, type ClassTerm, type CompareOp, type FactTerm, type FilterExpr, type FilterTerm, type NotExpr, type OrExpr } from './filter-expr';
export { FilterSyntaxError } from './filter-syntax-error';
export { parseCompound, isKeyword, MAX_FILTER_DEPTH, MAX_FILTER_LENGTH_CHARS } from './filter-parser';
export { formatExpr, formatTerm } from './format-expr';
export { foldExpr, termsOf, referencedTaskIds, type ExprFolder } from './expr-visitor';
export { evaluate, evaluateTerm, NO_TASK_RESULTS, type BoltTaskLookup, type BoltTaskResultFields, type NodeView } from './evaluate';
export { compareFact, factAt, asNumber, asText, compareOpOf, factOperatorOf, filterRegex } from './fact-compare';
export { parseFactFilter, parseFactTerm, parseWithFilter, parseWithItem, parseMatchEntry, compileMatchEntry, isRegexEntry, type MatchEntry, type MatchEntryOptions, type ParsedFactFilter } from './single-filters';
