import type { Metadata } from '@grpc/grpc-js';
import type { Filter } from '../../gen/baton/v1/filter';
import type { RunTaskRequest } from '../../gen/baton/v1/scheduler_service';
import { FailedPreconditionError, InvalidArgumentError, type FieldViolation } from '../../lib/errors';
import { DEFAULT_ENVIRONMENT, ENVIRONMENT_NAME, TASK_NAME } from '../../lib/names';
import { compileFilter } from './discovery';

/** Seconds a foreground RunTask waits for the nodes when the request gives 0. */
export const DEFAULT_WAIT_S = 60;

/** Request metadata key naming who asks for a run. */
export const CALLER_METADATA_KEY = 'x-baton-caller';

/** The caller id recorded when the request metadata names none. */
export const DEFAULT_CALLER = 'user=unknown';

// A caller id is shown and passed to tasks (`_choria_task_caller`): printable, bounded.
// eslint-disable-next-line no-control-regex -- control characters are exactly what it rejects
const CALLER_PATTERN = /^[^\x00-\x1f\x7f]{1,256}$/;

/** A user name for `run_as`: POSIX portable characters, at most 32 (Choria's DDL limit). */
const RUN_AS_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$/;

/** A client idempotency key: a UUID. */
const REQUEST_ID_PATTERN = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** A RunTaskRequest checked for form, with defaults applied. */
export interface ResolvedRunRequest {
  task: string;
  environment: string;
  inputJson: string;
  filter: Filter | undefined;
  /** How long a foreground run waits for the nodes, in ms. */
  waitMs: number;
  background: boolean;
  noop: boolean;
  runAs: string;
  timeoutS: number;
  /** Recorded on the run; not deduplicated yet (see resolveRunRequest). */
  requestId: string;
  caller: string;
}

/**
 * Checks everything in a RunTaskRequest that needs no other service: the task name and
 * environment forms, the filter, run_as, request_id and the caller id from the request
 * metadata. Throws InvalidArgumentError listing every problem.
 *
 * Batching (batch_size, batch_percent, batch_sleep_s) is not implemented yet; rather than run
 * all nodes at once when a caller asked for batches (a surprise for an update that reboots
 * nodes), a request that sets any of them fails with FAILED_PRECONDITION. request_id is
 * accepted and recorded on the run, but repeated requests are not deduplicated yet.
 */
export function resolveRunRequest(req: RunTaskRequest, metadata: Metadata): ResolvedRunRequest {
  const violations: FieldViolation[] = [];
  if (!TASK_NAME.test(req.task)) {
    violations.push({
      field: 'task',
      description: req.task === '' ? 'task is required, for example acme::restart' : `task '${req.task}' is not a task name; expected <module>::<task> (${TASK_NAME.source})`,
    });
  }
  const environment = req.environment || DEFAULT_ENVIRONMENT;
  if (!ENVIRONMENT_NAME.test(environment)) {
    violations.push({ field: 'environment', description: `environment '${req.environment}' is not an environment name; expected ${ENVIRONMENT_NAME.source}` });
  }
  if (req.runAs !== '' && !RUN_AS_PATTERN.test(req.runAs)) {
    violations.push({ field: 'run_as', description: `run_as '${req.runAs}' is not a user name; expected ${RUN_AS_PATTERN.source}` });
  }
  if (req.requestId !== '' && !REQUEST_ID_PATTERN.test(req.requestId)) {
    violations.push({ field: 'request_id', description: `request_id '${req.requestId}' is not a UUID` });
  }
  const given = metadata.get(CALLER_METADATA_KEY)[0];
  const caller = typeof given === 'string' && given !== '' ? given : DEFAULT_CALLER;
  if (!CALLER_PATTERN.test(caller)) {
    violations.push({ field: CALLER_METADATA_KEY, description: `metadata ${CALLER_METADATA_KEY} must be 1 to 256 printable characters` });
  }
  try {
    compileFilter(req.filter);
  } catch (err) {
    if (!(err instanceof InvalidArgumentError)) throw err;
    violations.push(...err.violations);
  }
  if (violations.length > 0) throw new InvalidArgumentError(violations.map((v) => v.description).join('; '), violations);

  if (req.batchSize > 0 || req.batchPercent > 0 || req.batchSleepS > 0) {
    throw new FailedPreconditionError(
      'BATCHING_NOT_SUPPORTED',
      'batching is not supported yet: leave batch_size, batch_percent and batch_sleep_s at 0 to run on every node at once',
    );
  }
  return {
    task: req.task,
    environment,
    inputJson: req.inputJson,
    filter: req.filter,
    waitMs: (req.waitS || DEFAULT_WAIT_S) * 1000,
    background: req.background,
    noop: req.noop,
    runAs: req.runAs,
    timeoutS: req.timeoutS,
    requestId: req.requestId,
    caller,
  };
}
