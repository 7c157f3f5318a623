/**
 * A type expression that is not valid Puppet: one line naming the expression, the position
 * (0-based character offset) and what was expected there, in Puppet's terms (docs/task-format.md §7.3).
 */
export class TypeSyntaxError extends Error {
  constructor(
    readonly expression: string,
    readonly position: number,
    readonly expected: string,
  ) {
    super(`invalid type '${expression}' at position ${position}: expected ${expected}`);
    this.name = 'TypeSyntaxError';
  }
}
