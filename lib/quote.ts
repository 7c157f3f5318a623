/**
 * The one way an error message or detail shows a value that came from the network. Such a
 * value can be megabytes long; repeated whole in a message and again in the status details it
 * made trailers larger than an HTTP/2 peer accepts (64 KiB), which left the call without an
 * answer and stalled every other call of the connection. So a value is shown as a short
 * prefix with its length, on one line.
 */

/** Characters of a value shown before it is cut. */
export const QUOTE_PREFIX_CHARS = 40;

/** One line: control characters, quotes and backslashes escaped as in JSON, without the surrounding quotes. */
function oneLine(text: string): string {
  return JSON.stringify(text).slice(1, -1).replace(/\\"/g, '"').replace(/'/g, "\\'");
}

/**
 * `'value'` for a short value; `'first 40 characters…' (20000 characters)` for a longer one.
 * Newlines and other control characters are escaped, so the result is always one line.
 */
export function quote(value: string, prefixChars = QUOTE_PREFIX_CHARS): string {
  if (value.length <= prefixChars) return `'${oneLine(value)}'`;
  return `'${oneLine(value.slice(0, prefixChars))}…' (${value.length} characters)`;
}

/** `text` cut to at most `maxChars` characters, the cut marked with `…`. */
export function cut(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `${text.slice(0, maxChars - 1)}…`;
}
