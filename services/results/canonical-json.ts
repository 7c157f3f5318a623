/**
 * JSON text with object keys sorted at every level, so that two equal values always give the
 * same string. The results script compares stored node results as strings ("recording the same
 * final result twice changes nothing"); a `value` Struct whose keys arrive in another order must
 * still compare equal.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object' || value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) out[key] = sortKeys((value as Record<string, unknown>)[key]);
  return out;
}
