import { JsonNumber, type JsonObject, type JsonValue } from './json-lexeme';
import { structKeyOptional, type PuppetType } from './puppet-type';
import { isInstance } from './type-instance';

/**
 * A value each type accepts and one it rejects, built from the AST (not from the validator), so
 * tests can run both through a compiled signature and assert the outcome (a validator checked only
 * against itself would prove nothing). Choices lean on the edge cases of docs/task-format.md §7.5:
 * code-point strings (`😀`), integers beyond 2^53, `1.0` as a Float, Enum case folding, sizes at
 * their bounds.
 */

const STRING_CANDIDATES = ['a', 'abc', 'a=b', 'a:b=c', 'abc_1', '0', '123', '10G', '1.5k', '5%vg', '50', 'x,y', 'A', 'on', '', 'a b', 'a|b', '\n', 'abc\n'];

function int(n: bigint | number): JsonNumber {
  return new JsonNumber(String(n), true);
}

function float(x: number): JsonNumber {
  const s = String(x);
  return new JsonNumber(/[.eE]/.test(s) ? s : `${s}.0`, false);
}

function codePoints(n: number): string {
  return '😀'.repeat(n);
}

/** A value `t` accepts, or undefined when none exists or none is found (`Sensitive`, unresolved, unmatchable regex). */
export function acceptedSample(t: PuppetType, depth = 0): JsonValue | undefined {
  if (depth > 8) return undefined;
  const d = depth + 1;
  switch (t.kind) {
    case 'Any':
    case 'Data':
      return { nested: [int(1), float(2.5), null, 'x'] };
    case 'Undef':
      return null;
    case 'NotUndef':
      return acceptedSample(t.type, d) ?? undefined;
    case 'Scalar':
    case 'ScalarData':
      return 'x';
    case 'String':
      return codePoints(t.min === 0 && (t.max === null || t.max > 0) ? 1 : t.min);
    case 'StringValue':
      return t.value;
    case 'Integer':
      if (t.min === null && t.max === null) return int(123456789012345678901234567890n);
      return int(t.min ?? t.max!);
    case 'Float':
      return float(t.min ?? t.max ?? 1.5);
    case 'Numeric':
      return float(2.5);
    case 'Boolean':
      return t.value ?? true;
    case 'Enum': {
      const v = t.values[0];
      if (!t.caseInsensitive) return v;
      const swapped = v.replace(/[a-zA-Z]/g, (c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()));
      return swapped;
    }
    case 'Pattern':
      return STRING_CANDIDATES.find((s) => t.patterns.length === 0 || t.patterns.some((p) => p.regex.test(s)));
    case 'Optional':
      return acceptedSample(t.type, d) ?? null;
    case 'Variant':
      for (const x of t.types) {
        const v = acceptedSample(x, d);
        if (v !== undefined) return v;
      }
      return undefined;
    case 'Array': {
      const n = Math.max(t.min, t.max === 0 ? 0 : 1);
      if (n === 0) return [];
      const e = acceptedSample(t.element, d);
      return e === undefined ? undefined : Array.from({ length: n }, () => e);
    }
    case 'Tuple': {
      const out: JsonValue[] = [];
      for (let i = 0; i < Math.max(t.min, Math.min(t.types.length, t.max ?? Infinity)); i++) {
        const e = acceptedSample(t.types[Math.min(i, t.types.length - 1)], d);
        if (e === undefined) return undefined;
        out.push(e);
      }
      return out;
    }
    case 'Collection':
      return Array.from({ length: t.min }, () => 'x');
    case 'Hash': {
      const n = Math.max(t.min, t.max === 0 ? 0 : 1);
      const o = Object.create(null) as JsonObject;
      const keys = [...STRING_CANDIDATES, ...Array.from({ length: n }, (_, i) => `k${i}`)].filter((k) => isInstance(t.key, k));
      const keyFromType = acceptedSample(t.key, d);
      if (typeof keyFromType === 'string' && !keys.includes(keyFromType)) keys.unshift(keyFromType);
      const v = acceptedSample(t.value, d);
      if (keys.length < n || v === undefined) return t.min === 0 ? o : undefined;
      for (let i = 0; i < n; i++) o[keys[i]] = v;
      return o;
    }
    case 'Struct': {
      const o = Object.create(null) as JsonObject;
      for (const m of t.members) {
        const v = acceptedSample(m.type, d);
        if (v === undefined) {
          if (structKeyOptional(m)) continue;
          return undefined;
        }
        o[m.key] = v;
      }
      return o;
    }
    case 'Sensitive':
    case 'Never':
    case 'Unresolved':
      return undefined;
    case 'Alias':
      return acceptedSample(t.resolve(), d);
  }
}

/** A value `t` rejects, or undefined when it accepts everything (`Any`, `Data`). */
export function rejectedSample(t: PuppetType, depth = 0): JsonValue | undefined {
  if (depth > 8) return undefined;
  const d = depth + 1;
  switch (t.kind) {
    case 'Any':
    case 'Data':
      return undefined;
    case 'Undef':
      return 'x';
    case 'NotUndef':
      return null;
    case 'Scalar':
    case 'ScalarData':
      return ['x'];
    case 'String':
      if (t.min > 0) return codePoints(t.min - 1) + (t.min > 1 ? '' : '');
      if (t.max !== null) return codePoints(t.max + 1);
      return int(5);
    case 'StringValue':
      return `${t.value}x`;
    case 'Integer':
      if (t.min !== null) return int(t.min - 1n);
      if (t.max !== null) return int(t.max + 1n);
      return float(1);
    case 'Float':
      if (t.min !== null) return float(t.min - 1);
      if (t.max !== null) return float(t.max + 1);
      return int(1);
    case 'Numeric':
      return '1';
    case 'Boolean':
      return t.value === null ? 'true' : !t.value;
    case 'Enum':
      return t.values.includes('zz-not-listed') ? 'zz-other' : 'zz-not-listed';
    case 'Pattern':
      return STRING_CANDIDATES.find((s) => !t.patterns.some((p) => p.regex.test(s))) ?? int(5);
    case 'Optional': {
      const r = rejectedSample(t.type, d);
      return r === null ? undefined : r;
    }
    case 'Variant':
      return ['zz-not-listed', int(7), float(0.5), false, [], Object.create(null) as JsonObject, [int(1)], null].find(
        (v) => !t.types.some((x) => isInstance(x, v)),
      );
    case 'Array':
    case 'Tuple': {
      if (t.min > 0) return [];
      if (t.max !== null) {
        const e = acceptedSample(t.kind === 'Array' ? t.element : t.types[t.types.length - 1], d);
        if (e !== undefined) return Array.from({ length: t.max + 1 }, () => e);
      }
      const e = rejectedSample(t.kind === 'Array' ? t.element : t.types[0], d);
      return e === undefined ? 'x' : [e];
    }
    case 'Collection':
      return 'x';
    case 'Hash': {
      if (t.min > 0) return Object.create(null) as JsonObject;
      const v = rejectedSample(t.value, d);
      if (v === undefined) return [];
      const o = Object.create(null) as JsonObject;
      o.k = v;
      return o;
    }
    case 'Struct': {
      const o = Object.create(null) as JsonObject;
      o.zz_not_a_key = int(1);
      return o;
    }
    case 'Sensitive':
    case 'Never':
    case 'Unresolved':
      return 'x';
    case 'Alias':
      return rejectedSample(t.resolve(), d);
  }
}
