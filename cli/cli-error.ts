import { status } from '@grpc/grpc-js';
import { isServiceError, readServiceError } from '../lib/errors';

/**
 * Exit codes of `baton` (documented in the README):
 * 0 every node succeeded; 1 some node failed; 2 usage or input error; 3 no node matched;
 * 4 the wait ended with tasks still running; 69 a service cannot be reached (EX_UNAVAILABLE).
 */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, NO_NODES: 3, STILL_RUNNING: 4, UNAVAILABLE: 69 } as const;

/** An error meant for an operator: one line and an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.USAGE,
  ) {
    super(message);
  }
}

/** Turns anything thrown into one line for a person and an exit code; no stack trace. */
export function describeError(err: unknown): { line: string; exitCode: number } {
  if (err instanceof CliError) return { line: err.message, exitCode: err.exitCode };
  if (isServiceError(err)) {
    const report = readServiceError(err);
    // The service's message often lists the violations already (the scheduler's input check does).
    const violations = report.violations.filter((v) => !report.message.includes(v.description)).map((v) => `${v.field}: ${v.description}`).join('; ');
    const line = violations ? `${report.message}: ${violations}` : report.message;
    switch (report.code) {
      case status.UNAVAILABLE:
        return { line: `service unavailable: ${report.message}`, exitCode: EXIT.UNAVAILABLE };
      case status.DEADLINE_EXCEEDED:
        return { line: `no answer in time: ${report.message}`, exitCode: EXIT.UNAVAILABLE };
      case status.FAILED_PRECONDITION:
        if (report.reason === 'NO_NODES_MATCHED') return { line, exitCode: EXIT.NO_NODES };
        // A request the task cannot take (noop on a task without it) is the operator's to change.
        if (report.reason === 'NOOP_NOT_SUPPORTED') return { line, exitCode: EXIT.USAGE };
        return { line, exitCode: EXIT.FAILED };
      default:
        return { line, exitCode: report.code === status.INTERNAL || report.code === status.UNKNOWN ? EXIT.FAILED : EXIT.USAGE };
    }
  }
  return { line: err instanceof Error ? err.message.split('\n')[0] : String(err), exitCode: EXIT.FAILED };
}
