/**
 * What replaces a sensitive value wherever it would otherwise be kept or shown: run records,
 * audit lines, agent spools and logs, a task's `_sensitive` output. One marker, so an operator
 * (and a test) recognises a redaction wherever it appears (docs/task-format.md §4 step 6, §6.1
 * item 5).
 */
export const REDACTED_VALUE = 'Sensitive [value redacted]';
