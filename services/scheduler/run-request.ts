import type { Filter } from '../../gen/baton/v1/filter';
import type { RunTaskRequest } from '../../gen/baton/v1/scheduler_service';
import { InvalidArgumentError, type FieldViolation } from '../../lib/errors';
import { DEFAULT_ENVIRONMENT, ENVIRONMENT_NAME, TASK_NAME } from '../../lib/names';
import { CALLER_METADATA_KEY, callerOf, type CallerSource } from '../../lib/peer-identity';
import { compileFilter, EVERY_NODE, type FilterExpr } from '../../lib/filter-language';
import { quote } from '../../lib/quote';

/** Seconds a foreground RunTask waits for the nodes when the request gives 0. */
export const DEFAULT_WAIT_S = 60;

// A caller id is shown and passed to tasks (`_choria_task_caller`): printable, bounded.
// eslint-disable-next-line no-control-regex -- control characters are exactly what it rejects
const CALLER_PATTERN = /^[^\x00-\x1f\x7f]{1,256}$/;

/** A user name for `run_as`: POSIX portable characters, at most 32 (Choria's DDL limit). */
const RUN_AS_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$/;

/** A client idempotency key: 1-128 characters of [A-Za-z0-9._-] (a UUID fits; scheduler_service.proto). */
export const REQUEST_ID_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

/** Seconds between batches when the request batches and gives batch_sleep_s 0 (Choria's --batch-sleep default). */
export const DEFAULT_BATCH_SLEEP_S = 1;

/** How a run is split into batches: a fixed count of nodes, or a percentage of its online nodes. */
export type BatchSpec = { size: number; percent?: undefined; sleepMs: number } | { size?: undefined; percent: number; sleepMs: number };

/** A RunTaskRequest checked for form, with defaults applied. */
export interface ResolvedRunRequest {
  task: string;
  environment: string;
  inputJson: string;
  filter: Filter | undefined;
  /** The filter compiled (lib/filter-language `compileFilter`): what discovery runs. */
  query: FilterExpr;
  /** How long a foreground run waits for the nodes, in ms. */
  waitMs: number;
  background: boolean;
  noop: boolean;
  runAs: string;
  timeoutS: number;
  /** Batches, when the request asks for them. */
  batch: BatchSpec | undefined;
  /** The client's idempotency key; empty for none. */
  requestId: string;
  caller: string;
}

/**
 * Checks everything in a RunTaskRequest that needs no other service: the task name and
 * environment forms, the filter, run_as, request_id, the caller id (lib/peer-identity.ts
 * callerOf: the client certificate's, or on a plaintext connection the request metadata's),
 * and the batch fields. Throws InvalidArgumentError listing every problem.
 */
export function resolveRunRequest(req: RunTaskRequest, call: CallerSource): ResolvedRunRequest {
  const violations: FieldViolation[] = [];
  if (!TASK_NAME.test(req.task)) {
    violations.push({
      field: 'task',
      description:
        req.task === ''
          ? 'task is required, for example acme::restart'
          : `task ${quote(req.task)} is not a task name; expected <module>::<task> (${TASK_NAME.source})`,
    });
  }
  const environment = req.environment || DEFAULT_ENVIRONMENT;
  if (!ENVIRONMENT_NAME.test(environment)) {
    violations.push({
      field: 'environment',
      description: `environment ${quote(req.environment)} is not an environment name; expected ${ENVIRONMENT_NAME.source}`,
    });
  }
  if (req.runAs !== '' && !RUN_AS_PATTERN.test(req.runAs)) {
    violations.push({ field: 'run_as', description: `run_as ${quote(req.runAs)} is not a user name; expected ${RUN_AS_PATTERN.source}` });
  }
  if (req.requestId !== '' && !REQUEST_ID_PATTERN.test(req.requestId)) {
    violations.push({
      field: 'request_id',
      description: `request_id ${quote(req.requestId)} is not valid; expected 1-128 characters of [A-Za-z0-9._-], a UUID for example`,
    });
  }
  violations.push(...batchViolations(req));
  const caller = callerOf(call);
  // Only a plaintext caller's own metadata can be malformed; a certificate's CN was checked by the role interceptor.
  if (!CALLER_PATTERN.test(caller)) {
    violations.push({ field: CALLER_METADATA_KEY, description: `metadata ${CALLER_METADATA_KEY} must be 1 to 256 printable characters` });
  }
  // These descriptions name their field; the filter's do not, and its message names each field once.
  const lines = violations.map((v) => v.description);
  let query = EVERY_NODE;
  try {
    query = compileFilter(req.filter);
  } catch (err) {
    if (!(err instanceof InvalidArgumentError)) throw err;
    violations.push(...err.violations);
    lines.push(err.message);
  }
  if (violations.length > 0) throw new InvalidArgumentError(lines.join('; '), violations);
  return {
    task: req.task,
    environment,
    inputJson: req.inputJson,
    filter: req.filter,
    query,
    waitMs: (req.waitS || DEFAULT_WAIT_S) * 1000,
    background: req.background,
    noop: req.noop,
    runAs: req.runAs,
    timeoutS: req.timeoutS,
    batch: batchSpec(req),
    requestId: req.requestId,
    caller,
  };
}

/** What is wrong with the batch fields of a request, if anything. */
function batchViolations(req: RunTaskRequest): FieldViolation[] {
  const violations: FieldViolation[] = [];
  if (req.batchSize > 0 && req.batchPercent > 0) {
    violations.push({
      field: 'batch_percent',
      description: `batch_size (${req.batchSize}) and batch_percent (${req.batchPercent}) are both set; expected at most one of them`,
    });
  } else if (req.batchPercent > 100) {
    violations.push({ field: 'batch_percent', description: `batch_percent ${req.batchPercent} is not a percentage; expected 1 to 100, or 0 for no batches` });
  }
  if (req.batchSleepS > 0 && req.batchSize === 0 && req.batchPercent === 0) {
    violations.push({
      field: 'batch_sleep_s',
      description: `batch_sleep_s ${req.batchSleepS} is set without batches; expected batch_size or batch_percent with it, or 0`,
    });
  }
  return violations;
}

/** The batches a valid request asks for; undefined for all nodes at once. */
function batchSpec(req: RunTaskRequest): BatchSpec | undefined {
  const sleepMs = (req.batchSleepS || DEFAULT_BATCH_SLEEP_S) * 1000;
  if (req.batchSize > 0) return { size: req.batchSize, sleepMs };
  if (req.batchPercent > 0) return { percent: req.batchPercent, sleepMs };
  return undefined;
}
