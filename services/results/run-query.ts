import { createHash } from 'node:crypto';
import type { ListRunsRequest } from '../../gen/baton/v1/results_service';
import type { Run } from '../../gen/baton/v1/run';
import { InvalidArgumentError, type FieldViolation } from '../../lib/errors';
import { TASK_NAME } from '../../lib/names';
import { quote } from '../../lib/quote';

/**
 * The filters of a ListRuns request (runs listed by time, caller and task),
 * checked and normalised. Creation times are index scores in whole milliseconds, so the
 * request's exclusive bounds become inclusive integer bounds here.
 */

/** A checked ListRuns filter. Every field is optional; the fields combine with AND. */
export interface RunQuery {
  /** Exact canonical task name. */
  task?: string;
  /** Exact caller id. */
  caller?: string;
  /** Smallest creation time (ms, inclusive); -Infinity when unbounded. */
  minScore: number;
  /** Largest creation time (ms, inclusive); +Infinity when unbounded. */
  maxScore: number;
}

/** The query that matches every run. */
export const ALL_RUNS: RunQuery = { minScore: -Infinity, maxScore: Infinity };

/** Checks the filters of `req`; a malformed task name is INVALID_ARGUMENT naming the field. */
export function runQueryOf(req: ListRunsRequest): RunQuery {
  const violations: FieldViolation[] = [];
  const task = req.task || undefined;
  if (task !== undefined && !TASK_NAME.test(task)) {
    violations.push({ field: 'task', description: `task must be a canonical task name such as acme::deploy, got ${quote(task)}` });
  }
  if (violations.length > 0) throw new InvalidArgumentError(`${violations[0].field}: ${violations[0].description}`, violations);
  return {
    task,
    caller: req.caller || undefined,
    // Strictly after T ms means at least T + 1 (scores are whole ms); Dates are whole ms too.
    minScore: req.createdAfter ? Math.floor(req.createdAfter.getTime()) + 1 : -Infinity,
    maxScore: req.createdBefore ? Math.ceil(req.createdBefore.getTime()) - 1 : Infinity,
  };
}

/** True when the run's record matches the query (index entries are checked against it too). */
export function matchesRunQuery(run: Run, query: RunQuery): boolean {
  if (query.task !== undefined && run.task !== query.task) return false;
  if (query.caller !== undefined && run.caller !== query.caller) return false;
  return true;
}

/**
 * A short digest of the query that page tokens carry, so a token is only used with the filters
 * that produced it; '' for the query matching every run (tokens made before filters existed
 * carry none and stay valid for it).
 */
export function runQueryFingerprint(query: RunQuery): string {
  if (query.task === undefined && query.caller === undefined && query.minScore === -Infinity && query.maxScore === Infinity) return '';
  const text = JSON.stringify([query.task ?? null, query.caller ?? null, String(query.minScore), String(query.maxScore)]);
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}
