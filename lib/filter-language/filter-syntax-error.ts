/** Longest expression quoted whole in a message; a longer one is quoted around the column. */
const QUOTED_MAX_CHARS = 160;

/**
 * The expression as a message quotes it: whole when short, else the part around `column` with
 * `…` for what is left out, so that an error about a 64 Ki-character filter stays one short line
 * (a message repeating the whole input can outgrow what gRPC trailers carry, and the caller then
 * gets no answer at all).
 */
export function excerpt(expression: string, column: number): string {
  if (expression.length <= QUOTED_MAX_CHARS) return JSON.stringify(expression);
  const from = Math.max(0, Math.min(column - 1 - QUOTED_MAX_CHARS / 2, expression.length - QUOTED_MAX_CHARS));
  const to = from + QUOTED_MAX_CHARS;
  return `${from > 0 ? '…' : ''}${JSON.stringify(expression.slice(from, to))}${to < expression.length ? '…' : ''}`;
}

/**
 * A filter that is not valid: one line naming the expression, the 1-based column and what was
 * expected there, e.g. `expected ')' at column 16 of "(role=web and x"`.
 */
export class FilterSyntaxError extends Error {
  constructor(
    readonly expression: string,
    /** 1-based column; `expression.length + 1` means "at the end". */
    readonly column: number,
    readonly expected: string,
  ) {
    super(`expected ${expected} at column ${column} of ${excerpt(expression, column)}`);
    this.name = 'FilterSyntaxError';
  }
}
