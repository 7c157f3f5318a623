import { Metadata, status, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { BadRequest, ErrorInfo, RetryInfo } from '../gen/google/rpc/error_details';
import { Status } from '../gen/google/rpc/status';
import type { Logger } from './logger';
import { cut } from './quote';

/**
 * Domain errors and the one boundary that maps them to gRPC status codes with `google.rpc`
 * details (AIP-193). Handlers throw these; `toServiceError` turns anything thrown into a
 * status, so nothing internal leaks to a caller as UNKNOWN with a stack.
 */

/** Error domain put in every `google.rpc.ErrorInfo`. */
export const ERROR_DOMAIN = 'baton.dev';

/**
 * Bounds of what one error puts in the trailers. grpc-message and grpc-status-details-bin are
 * HTTP/2 headers, and a header block larger than the peer accepts (64 KiB for Node's HTTP/2)
 * is never delivered: the call gets no answer and the connection it shares with other calls
 * stalls. These keep an error's trailers under 16 KiB whatever a handler put in it; messages
 * quote inputs through lib/quote.ts so that they rarely need cutting at all.
 */
export const MAX_ERROR_MESSAGE_CHARS = 1_024;

/** Longest field name or description of one violation sent in a BadRequest, in characters. */
export const MAX_VIOLATION_TEXT_CHARS = 256;

/** Most violations sent in a BadRequest; the message says how many there were. */
export const MAX_VIOLATIONS_SENT = 16;

/** Most ErrorInfo metadata entries sent, and the longest value, in characters. */
export const MAX_ERROR_METADATA_ENTRIES = 16;
export const MAX_ERROR_METADATA_VALUE_CHARS = 256;

const TYPE_PREFIX = 'type.googleapis.com/';
const DETAILS_KEY = 'grpc-status-details-bin';

/** One invalid field or parameter: which, and what was expected. */
export interface FieldViolation {
  field: string;
  /** What is wrong and what was expected. Clients show `field: description`, so it never starts with `<field>: ` itself. */
  description: string;
}

/** Base of Baton's domain errors: a gRPC code, a machine-readable reason, and a message. */
export class BatonError extends Error {
  constructor(
    readonly code: status,
    readonly reason: string,
    message: string,
    readonly metadata: Record<string, string> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad input: INVALID_ARGUMENT with a `google.rpc.BadRequest` listing each violation. */
export class InvalidArgumentError extends BatonError {
  constructor(
    message: string,
    readonly violations: FieldViolation[] = [],
    reason = 'INVALID_ARGUMENT',
    metadata: Record<string, string> = {},
  ) {
    super(status.INVALID_ARGUMENT, reason, message, metadata);
  }
}

/** Something named does not exist: NOT_FOUND. */
export class NotFoundError extends BatonError {
  constructor(reason: string, message: string, metadata: Record<string, string> = {}) {
    super(status.NOT_FOUND, reason, message, metadata);
  }
}

/** The system is not in a state that allows the call: FAILED_PRECONDITION. */
export class FailedPreconditionError extends BatonError {
  constructor(reason: string, message: string, metadata: Record<string, string> = {}) {
    super(status.FAILED_PRECONDITION, reason, message, metadata);
  }
}

/** The thing to create exists already: ALREADY_EXISTS. */
export class AlreadyExistsError extends BatonError {
  constructor(reason: string, message: string) {
    super(status.ALREADY_EXISTS, reason, message);
  }
}

/**
 * The reason of a Hello refused by a scheduler's admission control (UNAVAILABLE, with a retry
 * delay naming the slot the scheduler keeps for the agent): the agent comes back to the same
 * scheduler rather than moving to its next one (docs/agent-protocol.md, "Admission control").
 */
export const TOO_MANY_HELLOS = 'TOO_MANY_HELLOS';

/**
 * A dependency (Redis, another service) cannot be reached now, or the server sheds load:
 * UNAVAILABLE, retryable. With `retryDelayMs` the status carries a `google.rpc.RetryInfo`
 * saying how long the caller should wait before trying again.
 */
export class UnavailableError extends BatonError {
  constructor(
    message: string,
    readonly retryDelayMs?: number,
    reason = 'UNAVAILABLE',
  ) {
    super(status.UNAVAILABLE, reason, message);
  }
}

/**
 * The caller is known but its role may not make this call: PERMISSION_DENIED. The
 * message names the certificate, the method and the roles that may call it.
 */
export class PermissionDeniedError extends BatonError {
  constructor(message: string, reason = 'PERMISSION_DENIED', metadata: Record<string, string> = {}) {
    super(status.PERMISSION_DENIED, reason, message, metadata);
  }
}

/**
 * The caller presented no usable identity (no client certificate, or one without a Baton
 * role): UNAUTHENTICATED, distinct from a known caller lacking permission.
 */
export class UnauthenticatedError extends BatonError {
  constructor(message: string, reason = 'UNAUTHENTICATED', metadata: Record<string, string> = {}) {
    super(status.UNAUTHENTICATED, reason, message, metadata);
  }
}

/**
 * The caller asked for more than it may have now: RESOURCE_EXHAUSTED with a
 * `google.rpc.RetryInfo` saying how long to wait before trying again.
 */
export class ResourceExhaustedError extends BatonError {
  constructor(
    reason: string,
    message: string,
    /** How long the caller should wait before retrying, in ms. */
    readonly retryDelayMs: number,
    metadata: Record<string, string> = {},
  ) {
    super(status.RESOURCE_EXHAUSTED, reason, message, metadata);
  }
}

function packAny(typeName: string, bytes: Uint8Array): { typeUrl: string; value: Buffer } {
  return { typeUrl: TYPE_PREFIX + typeName, value: Buffer.from(bytes) };
}

/** A violation as sent: field and description cut to MAX_VIOLATION_TEXT_CHARS. */
function sentViolation(v: FieldViolation): FieldViolation {
  return { field: cut(v.field, MAX_VIOLATION_TEXT_CHARS), description: cut(v.description, MAX_VIOLATION_TEXT_CHARS) };
}

/** The message as sent: one line, at most MAX_ERROR_MESSAGE_CHARS, saying when violations were left out of the details. */
function sentMessage(err: BatonError | InvalidArgumentError): string {
  const count = err instanceof InvalidArgumentError ? err.violations.length : 0;
  const more = count > MAX_VIOLATIONS_SENT ? ` (${count} problems; the first ${MAX_VIOLATIONS_SENT} are in the details)` : '';
  return cut(err.message.replace(/[\r\n]+/g, ' '), MAX_ERROR_MESSAGE_CHARS - more.length) + more;
}

/** ErrorInfo metadata as sent: at most MAX_ERROR_METADATA_ENTRIES entries of values cut to MAX_ERROR_METADATA_VALUE_CHARS. */
function sentMetadata(metadata: Record<string, string>): Record<string, string> {
  const entries = Object.entries(metadata).slice(0, MAX_ERROR_METADATA_ENTRIES);
  return Object.fromEntries(entries.map(([k, v]) => [cut(k, MAX_VIOLATION_TEXT_CHARS), cut(v, MAX_ERROR_METADATA_VALUE_CHARS)]));
}

/**
 * Maps anything thrown by a handler to a gRPC status; unexpected errors are logged, not leaked.
 * What is sent is bounded (MAX_ERROR_MESSAGE_CHARS and the limits beside it) whatever the error holds.
 */
export function toServiceError(err: unknown, log?: Logger): Partial<StatusObject> {
  if (!(err instanceof BatonError)) {
    // An upstream gRPC error passes through, its message bounded like ours.
    if (isServiceError(err)) return { code: err.code, details: cut(err.details ?? '', MAX_ERROR_MESSAGE_CHARS), metadata: err.metadata };
    log?.error({ err }, 'internal error');
    return { code: status.INTERNAL, details: 'internal error; see the service log' };
  }
  const message = sentMessage(err);
  const details = [
    packAny('google.rpc.ErrorInfo', ErrorInfo.encode({ reason: err.reason, domain: ERROR_DOMAIN, metadata: sentMetadata(err.metadata) }).finish()),
  ];
  const retryDelayMs = err instanceof ResourceExhaustedError || err instanceof UnavailableError ? err.retryDelayMs : undefined;
  if (retryDelayMs !== undefined) {
    const ms = Math.max(0, Math.ceil(retryDelayMs));
    details.push(
      packAny('google.rpc.RetryInfo', RetryInfo.encode({ retryDelay: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 } }).finish()),
    );
  }
  if (err instanceof InvalidArgumentError && err.violations.length > 0) {
    const fieldViolations = err.violations.slice(0, MAX_VIOLATIONS_SENT).map((v) => ({ ...sentViolation(v), reason: '' }));
    details.push(packAny('google.rpc.BadRequest', BadRequest.encode({ fieldViolations }).finish()));
  }
  const metadata = new Metadata();
  metadata.set(DETAILS_KEY, Buffer.from(Status.encode({ code: err.code, message, details }).finish()));
  return { code: err.code, details: message, metadata };
}

/** True for errors that carry a gRPC status (as thrown by grpc-js clients). */
export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number' && (err as Partial<ServiceError>).metadata instanceof Metadata;
}

/** What a client can read from a gRPC error: code, message, reason and field violations. */
export interface ErrorReport {
  code: status;
  message: string;
  reason?: string;
  /** The ErrorInfo metadata, when it has any. */
  metadata?: Record<string, string>;
  violations: FieldViolation[];
  /** From a `google.rpc.RetryInfo`: how long to wait before retrying, in ms. */
  retryDelayMs?: number;
}

/** Decodes a gRPC error's `google.rpc` details (the counterpart of `toServiceError`). */
export function readServiceError(err: ServiceError): ErrorReport {
  const report: ErrorReport = { code: err.code, message: err.details || err.message, violations: [] };
  const raw = err.metadata?.get(DETAILS_KEY)[0];
  if (!Buffer.isBuffer(raw)) return report;
  for (const any of Status.decode(raw).details) {
    if (any.typeUrl === TYPE_PREFIX + 'google.rpc.ErrorInfo') {
      const info = ErrorInfo.decode(any.value);
      report.reason = info.reason;
      if (Object.keys(info.metadata).length > 0) report.metadata = info.metadata;
    }
    if (any.typeUrl === TYPE_PREFIX + 'google.rpc.RetryInfo') {
      const delay = RetryInfo.decode(any.value).retryDelay;
      if (delay) report.retryDelayMs = delay.seconds * 1000 + Math.round(delay.nanos / 1_000_000);
    }
    if (any.typeUrl === TYPE_PREFIX + 'google.rpc.BadRequest') {
      report.violations = BadRequest.decode(any.value).fieldViolations.map((v) => ({ field: v.field, description: v.description }));
    }
  }
  return report;
}
