import { InvalidArgumentError } from '../errors';

/**
 * A filter that is not valid: one line naming the expression, the 1-based column and what was
 * expected there, e.g. `expected ')' at column 16 of "(role=web and x"` (issue 5 point 3).
 */
export class FilterSyntaxError extends Error {
  constructor(
    readonly expression: string,
    /** 1-based column; `expression.length + 1` means "at the end". */
    readonly column: number,
    readonly expected: string,
  ) {
    super(`expected ${expected} at column ${column} of ${JSON.stringify(expression)}`);
    this.name = 'FilterSyntaxError';
  }

  /** The same problem as INVALID_ARGUMENT for a gRPC boundary, naming the request field (`filter.compound[0]`). */
  toInvalidArgument(field: string): InvalidArgumentError {
    const description = `${field}: ${this.message}`;
    return new InvalidArgumentError(description, [{ field, description }], 'INVALID_FILTER');
  }
}
