import { NodeState, type NodeResult } from '../gen/baton/v1/run';
import {
  evaluate,
  formatTerm,
  parseCompound,
  termsOf,
  FilterSyntaxError,
  type BoltTaskField,
  type BoltTaskResultFields,
  type FilterExpr,
} from './filter-language';
import { InvalidArgumentError } from './errors';

/**
 * How a node's result answers `bolt_task('<id>').<field>` terms (docs/choria-compat.md §6.2), in
 * one place for both readers: the scheduler, which evaluates such terms in discovery, and the
 * results service, which evaluates them for a slim GetRunStatus with `where` (so a term over a
 * 10,000-node run moves only the matching nodes).
 */

/** The NodeResult field (proto name) each `bolt_task` field is read from (boltTaskFields); `known` and the wrapper fields need none. */
const RESULT_FIELD_OF: Partial<Record<BoltTaskField, string>> = {
  task: 'task',
  caller: 'callerid',
  exitcode: 'exitcode',
  completed: 'completed',
  runtime: 'runtime',
  start_time: 'start_time',
  stdout: 'stdout',
  stderr: 'stderr',
};

/**
 * The NodeResult fields (proto names) a slim read must return to answer the `bolt_task` terms
 * of `exprs` on run `taskId`, sorted; `completed` always, since ranTask needs it (host, state
 * and start_time come with every slim item).
 */
export function resultFieldsFor(exprs: FilterExpr[], taskId: string): string[] {
  const fields = new Set(['completed']);
  for (const term of exprs.flatMap((e) => termsOf(e))) {
    const field = term.kind === 'BOLT_TASK' && term.taskId === taskId ? RESULT_FIELD_OF[term.field] : undefined;
    if (field) fields.add(field);
  }
  return [...fields].sort();
}

/** A node result as the fields `bolt_task` compares (docs/choria-compat.md §6.2; times in epoch seconds). */
export function boltTaskFields(r: NodeResult): BoltTaskResultFields {
  const fields: BoltTaskResultFields = {
    task: r.task,
    caller: r.callerid,
    exitcode: r.exitcode,
    completed: r.completed,
    runtime: r.runtime,
    stdout: r.stdout,
    stderr: r.stderr,
  };
  if (r.startTime) fields.start_time = Math.floor(r.startTime.getTime() / 1000);
  return fields;
}

/**
 * Whether a recorded result means the node ran (or is running) the task. A node recorded as
 * NO_RESPONSE or cancelled before it started never ran it, like a node outside the run: it is
 * not `known` and matches no other field (Choria's 127 default made `exitcode > 0` pick it).
 */
export function ranTask(r: NodeResult): boolean {
  return r.startTime !== undefined || r.completed || (r.state !== NodeState.NODE_STATE_NO_RESPONSE && r.state !== NodeState.NODE_STATE_CANCELLED);
}

/** True when the task is known on the node of `r` (ranTask) and its result satisfies `expr` (bolt_task terms of r's run only). */
export function resultMatches(expr: FilterExpr, r: NodeResult): boolean {
  if (!ranTask(r)) return false;
  const fields = boltTaskFields(r);
  return evaluate(expr, { identity: r.host, facts: {}, classes: [], agents: [] }, () => fields);
}

/**
 * Parses the `where` of a slim GetRunStatus of run `taskId` (results_service.proto): an `-S`
 * expression of that run's `bolt_task` terms only. Throws InvalidArgumentError naming the field,
 * the column of a syntax error, or the term that is not one.
 */
export function parseResultWhere(text: string, taskId: string): FilterExpr {
  const field = 'result_fields.where';
  const invalid = (description: string) => new InvalidArgumentError(`${field}: ${description}`, [{ field, description }]);
  let expr: FilterExpr;
  try {
    expr = parseCompound(text);
  } catch (err) {
    if (err instanceof FilterSyntaxError) throw invalid(err.message);
    throw err;
  }
  const other = termsOf(expr).find((t) => t.kind !== 'BOLT_TASK' || t.taskId !== taskId);
  if (other) throw invalid(`only bolt_task('${taskId}') terms can be answered from this run's results, got ${formatTerm(other)}`);
  return expr;
}
