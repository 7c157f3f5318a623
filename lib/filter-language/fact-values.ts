/**
 * How a node's facts read as values, in one place for the two discovery paths: the Redis index
 * writes exactly the (path, value) pairs `scalarFacts` lists, keyed by `indexText` and scored by
 * `readNumber`, and the in-memory evaluator resolves a path with `factAt` and compares with the
 * same readers (fact-compare.ts). A property test runs every filter through both
 * (services/scheduler/discovery-paths.test.ts).
 */

/** A number: optional sign, digits with an optional fraction (or a bare fraction), optional exponent. */
const NUMBER = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;

/**
 * A value as a number: a finite JSON number, or text that reads as one (`"4"`, `" 1.5e3 "`).
 * Text that overflows (`"1e999"`) is not a number: it compares as text, and the index (whose
 * scores are finite doubles) agrees.
 */
export function readNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string' && NUMBER.test(v)) {
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/** A value's text, as equality and regular expressions see it; objects and arrays as their JSON. */
export function asText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return JSON.stringify(v) ?? '';
}

/** A scalar fact value as the index keys it: its text lowercased, since equality ignores case. */
export function indexText(v: string | number | boolean): string {
  return String(v).toLowerCase();
}

/** An array index as JSON paths write it (`0`, `12`; not `01`, `-1` or `length`). */
const ARRAY_INDEX = /^(0|[1-9]\d*)$/;

/**
 * Looks up a dotted fact path (`os.family`, `disks.0.size`): a top-level fact named with the
 * dots literally wins; otherwise each segment is an object key or an array index.
 */
export function factAt(facts: Record<string, unknown>, path: string): unknown {
  if (Object.hasOwn(facts, path)) return facts[path];
  let cur: unknown = facts;
  for (const segment of path.split('.')) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    if (Array.isArray(cur) ? !ARRAY_INDEX.test(segment) || Number(segment) >= cur.length : !Object.hasOwn(cur, segment)) return undefined;
    cur = (cur as Record<string, unknown>)[segment];
  }
  return cur;
}

/** A fact value that comparisons other than regexes see: text, a number or a boolean. */
export type ScalarFact = string | number | boolean;

/**
 * Every path `factAt` resolves to a scalar, with that scalar: what the index writes for a node.
 * Nulls, objects and arrays have no entry (no comparison but a regex matches them, and those are
 * evaluated in memory). A nested key that contains a dot cannot be reached by a path, and a
 * nested path that a top-level fact of the same (dotted) name shadows is left out.
 */
export function scalarFacts(facts: Record<string, unknown>): Array<[string, ScalarFact]> {
  const out: Array<[string, ScalarFact]> = [];
  const walk = (value: unknown, path: string): void => {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      out.push([path, value]);
    } else if (typeof value === 'object' && value !== null) {
      for (const [k, v] of Object.entries(value)) {
        const child = `${path}.${k}`;
        if (!k.includes('.') && !Object.hasOwn(facts, child)) walk(v, child);
      }
    }
  };
  for (const [k, v] of Object.entries(facts)) {
    if (k.includes('.')) {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out.push([k, v]);
    } else {
      walk(v, k);
    }
  }
  return out;
}
