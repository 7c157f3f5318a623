import { compareFact, filterRegex } from './fact-compare';
import { factAt } from './fact-values';
import type { BoltTaskField, FilterExpr, FilterTerm } from './filter-expr';

/** What the evaluator needs of a node (the scheduler's IndexedNode fits). */
export interface NodeView {
  identity: string;
  facts: Record<string, unknown>;
  classes: readonly string[];
  agents: readonly string[];
}

/**
 * A node's result of an earlier task, as the `bolt_task` fields (docs/choria-compat.md §6.2; times as
 * epoch seconds, stdout as text). `known` is implied true. A field left out never matches.
 */
export type BoltTaskResultFields = Partial<Record<Exclude<BoltTaskField, 'known'>, string | number | boolean>>;

/**
 * The results of earlier runs: the fields of `identity`'s result of `taskId`, or undefined when
 * that node never ran that task.
 */
export type BoltTaskLookup = (taskId: string, identity: string) => BoltTaskResultFields | undefined;

/** A lookup for expressions without `bolt_task` terms: no node ran anything. */
export const NO_TASK_RESULTS: BoltTaskLookup = () => undefined;

/**
 * True when `node` satisfies `expr`: the in-memory path of discovery (and of policies). Class
 * names are case-insensitive, identities and agents case-sensitive; facts and task fields
 * compare per compareFact.
 */
export function evaluate(expr: FilterExpr, node: NodeView, data: BoltTaskLookup = NO_TASK_RESULTS): boolean {
  switch (expr.kind) {
    case 'AND':
      return expr.operands.every((o) => evaluate(o, node, data));
    case 'OR':
      return expr.operands.some((o) => evaluate(o, node, data));
    case 'NOT':
      return !evaluate(expr.operand, node, data);
    default:
      return evaluateTerm(expr, node, data);
  }
}

/** True when `node` satisfies one term. */
export function evaluateTerm(term: FilterTerm, node: NodeView, data: BoltTaskLookup = NO_TASK_RESULTS): boolean {
  switch (term.kind) {
    case 'CLASS': {
      const want = term.name.toLowerCase();
      return node.classes.some((c) => c.toLowerCase() === want);
    }
    case 'CLASS_REGEX': {
      const re = filterRegex(term.pattern);
      return node.classes.some((c) => re.test(c));
    }
    case 'IDENTITY':
      return node.identity === term.name;
    case 'IDENTITY_REGEX':
      return filterRegex(term.pattern, true).test(node.identity);
    case 'AGENT':
      return node.agents.includes(term.name);
    case 'AGENT_REGEX': {
      const re = filterRegex(term.pattern, true);
      return node.agents.some((a) => re.test(a));
    }
    case 'FACT':
      return compareFact(factAt(node.facts, term.path), term.operator, term.value);
    case 'BOLT_TASK': {
      const result = data(term.taskId, node.identity);
      // A node that never ran the task is only `known == false`. Choria answered the
      // docs/choria-compat.md §6.2 defaults instead, so its `exitcode` 127 made `exitcode > 0` pick
      // nodes that never ran.
      if (term.field === 'known') return compareFact(result !== undefined, term.operator, term.value);
      if (result === undefined) return false;
      return compareFact(result[term.field], term.operator, term.value);
    }
  }
}
