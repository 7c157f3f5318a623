import type { FilterExpr, FilterTerm } from './filter-expr';

/**
 * Walking an expression, for an index that plans a query (which terms can be answered by
 * inverted sets, which need a scan) and for prefetching `bolt_task` results.
 */

/** What `foldExpr` does at each kind of node; children are folded first. */
export interface ExprFolder<T> {
  and(operands: T[], expr: FilterExpr & { kind: 'AND' }): T;
  or(operands: T[], expr: FilterExpr & { kind: 'OR' }): T;
  not(operand: T, expr: FilterExpr & { kind: 'NOT' }): T;
  term(term: FilterTerm): T;
}

/** Folds an expression bottom-up (e.g. into a Redis plan, or a set of node ids). */
export function foldExpr<T>(expr: FilterExpr, folder: ExprFolder<T>): T {
  switch (expr.kind) {
    case 'AND':
      return folder.and(
        expr.operands.map((o) => foldExpr(o, folder)),
        expr,
      );
    case 'OR':
      return folder.or(
        expr.operands.map((o) => foldExpr(o, folder)),
        expr,
      );
    case 'NOT':
      return folder.not(foldExpr(expr.operand, folder), expr);
    default:
      return folder.term(expr);
  }
}

/** Every term of an expression, left to right (duplicates kept). */
export function termsOf(expr: FilterExpr): FilterTerm[] {
  const out: FilterTerm[] = [];
  const walk = (e: FilterExpr): void => {
    if (e.kind === 'AND' || e.kind === 'OR') e.operands.forEach(walk);
    else if (e.kind === 'NOT') walk(e.operand);
    else out.push(e);
  };
  walk(expr);
  return out;
}

/** The distinct task ids of the `bolt_task(...)` terms, in order of first use. */
export function referencedTaskIds(expr: FilterExpr): string[] {
  return [...new Set(termsOf(expr).flatMap((t) => (t.kind === 'BOLT_TASK' ? [t.taskId] : [])))];
}
