import { status } from '@grpc/grpc-js';
import { CALLER_RATE_REASON } from '../lib/caller-budget';
import { isServiceError, readServiceError } from '../lib/errors';

/**
 * Exit codes of `baton` (documented in the README):
 * 0 every node succeeded; 1 some node failed; 2 usage or input error; 3 no node matched;
 * 4 the wait ended with tasks still running; 5 the run does not exist (never did, removed by
 * retention, or lost with Redis's data); 69 a service cannot be reached (EX_UNAVAILABLE);
 * 75 a service refused for now, this caller being over its request budget (EX_TEMPFAIL: retry
 * later); 77 denied by policy or role (EX_NOPERM); 130 interrupted by Ctrl-C (the run goes on).
 */
export const EXIT = {
  OK: 0,
  FAILED: 1,
  USAGE: 2,
  NO_NODES: 3,
  STILL_RUNNING: 4,
  NO_RUN: 5,
  UNAVAILABLE: 69,
  TRY_LATER: 75,
  DENIED: 77,
  INTERRUPTED: 130,
} as const;

/** An error meant for an operator: one line and an exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.USAGE,
  ) {
    super(message);
  }
}

/** A commander error message as one line: no `error: ` prefix, "(Did you mean --x?)" on the same line. */
export function commanderLine(message: string): string {
  return message
    .replace(/^error: /, '')
    .replace(/\s*\n\s*/g, ' ')
    .trim();
}

/** Turns anything thrown into one line for a person and an exit code; no stack trace. */
export function describeError(err: unknown): { line: string; exitCode: number } {
  if (err instanceof CliError) return { line: err.message, exitCode: err.exitCode };
  if (isServiceError(err)) {
    const report = readServiceError(err);
    // The service's message often lists the violations already (the scheduler's input check does).
    const violations = report.violations
      .filter((v) => !report.message.includes(v.description))
      .map((v) => `${v.field}: ${v.description}`)
      .join('; ');
    const line = violations ? `${report.message}: ${violations}` : report.message;
    switch (report.code) {
      case status.UNAVAILABLE:
        return { line: `service unavailable: ${report.message}`, exitCode: EXIT.UNAVAILABLE };
      case status.DEADLINE_EXCEEDED:
        return { line: `no answer in time: ${report.message}`, exitCode: EXIT.UNAVAILABLE };
      case status.PERMISSION_DENIED:
        return { line, exitCode: EXIT.DENIED };
      case status.RESOURCE_EXHAUSTED:
        // Over the caller's request budget is not a mistake in the command: the same command works after the delay.
        return { line, exitCode: report.reason === CALLER_RATE_REASON ? EXIT.TRY_LATER : EXIT.USAGE };
      case status.NOT_FOUND:
        return { line, exitCode: report.reason === 'RUN_NOT_FOUND' ? EXIT.NO_RUN : EXIT.USAGE };
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
