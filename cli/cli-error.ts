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
