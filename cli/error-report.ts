import { status } from '@grpc/grpc-js';
import { CALLER_RATE_REASON } from '../lib/caller-budget';
import { isServiceError, readServiceError } from '../lib/errors';
import { CliError, EXIT } from './cli-error';

// Apart from cli-error.ts, which every command loads: this needs @grpc/grpc-js, and commands
// that call no service (--version, help, completion) should not load it.

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
