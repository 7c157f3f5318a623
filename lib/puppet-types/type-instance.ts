import { JsonNumber, type JsonObject, type JsonValue } from './json-lexeme';
import { describeType, quote, resolved, structKeyOptional, type PuppetType } from './puppet-type';

/**
 * The reference semantics of each type (docs/task-format.md §7.2, Puppet's `instance?`), walking
 * the AST. The compiled ajv validator is the fast path; this is used to word errors
 * (`describeMismatch`), for CLI coercion, and in tests as the oracle the compiled validator must
 * agree with.
 */

/** True for a JSON object (not an array, not a number). */
export function isJsonObject(v: JsonValue): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof JsonNumber);
}

/** Code points, not UTF-16 units: Ruby `String#size` (docs/task-format.md §7.2, String). */
export function codePointLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** `casecmp`: ASCII-only case folding, as Ruby's String#casecmp. */
export function asciiFold(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

function inSize(n: number, min: number, max: number | null): boolean {
  return n >= min && (max === null || n <= max);
}

/** Integer bound check without rounding: small lexemes compare as numbers, long ones as bigints. */
export function integerInRange(v: JsonNumber, min: bigint | null, max: bigint | null): boolean {
  if (min === null && max === null) return true;
  if (v.lexeme.length < 16) {
    const x = Number(v.lexeme);
    return (min === null || x >= Number(min)) && (max === null || x <= Number(max));
  }
  const x = v.bigint;
  return (min === null || x >= min) && (max === null || x <= max);
}

/** True when `v` is an instance of `t`. */
export function isInstance(t: PuppetType, v: JsonValue): boolean {
  switch (t.kind) {
    case 'Any':
    case 'Data':
      return true;
    case 'Undef':
      return v === null;
    case 'NotUndef':
      return v !== null && isInstance(t.type, v);
    case 'Scalar':
    case 'ScalarData':
      return typeof v === 'string' || typeof v === 'boolean' || v instanceof JsonNumber;
    case 'String':
      return typeof v === 'string' && inSize(codePointLength(v), t.min, t.max);
    case 'StringValue':
      return v === t.value;
    case 'Integer':
      return v instanceof JsonNumber && v.isInteger && integerInRange(v, t.min, t.max);
    case 'Float':
      return v instanceof JsonNumber && !v.isInteger && (t.min === null || v.value >= t.min) && (t.max === null || v.value <= t.max);
    case 'Numeric':
      return v instanceof JsonNumber;
    case 'Boolean':
      return typeof v === 'boolean' && (t.value === null || v === t.value);
    case 'Enum':
      if (typeof v !== 'string') return false;
      if (!t.caseInsensitive) return t.values.includes(v);
      return t.values.some((x) => asciiFold(x) === asciiFold(v));
    case 'Pattern':
      return typeof v === 'string' && (t.patterns.length === 0 || t.patterns.some((p) => p.regex.test(v)));
    case 'Optional':
      return v === null || isInstance(t.type, v);
    case 'Variant':
      return t.types.some((x) => isInstance(x, v));
    case 'Array':
      return Array.isArray(v) && inSize(v.length, t.min, t.max) && v.every((e) => isInstance(t.element, e));
    case 'Hash':
      return isJsonObject(v) && inSize(Object.keys(v).length, t.min, t.max) && Object.keys(v).every((k) => isInstance(t.key, k) && isInstance(t.value, v[k]));
    case 'Collection':
      return (Array.isArray(v) && inSize(v.length, t.min, t.max)) || (isJsonObject(v) && inSize(Object.keys(v).length, t.min, t.max));
    case 'Tuple':
      return Array.isArray(v) && inSize(v.length, t.min, t.max) && v.every((e, i) => isInstance(t.types[Math.min(i, t.types.length - 1)], e));
    case 'Struct': {
      if (!isJsonObject(v)) return false;
      const keys = new Set(t.members.map((m) => m.key));
      if (Object.keys(v).some((k) => !keys.has(k))) return false;
      return t.members.every((m) => (m.key in v ? isInstance(m.type, v[m.key]) : structKeyOptional(m)));
    }
    case 'Sensitive':
    case 'Never':
    case 'Unresolved':
      return false;
    case 'Alias':
      return isInstance(t.resolve(), v);
  }
}

/** Puppet's name for the type of a value, as in `got String` (`got Integer`, `got Undef`). */
export function valueTypeName(v: JsonValue): string {
  if (v === null) return 'Undef';
  if (typeof v === 'string') return 'String';
  if (typeof v === 'boolean') return 'Boolean';
  if (v instanceof JsonNumber) return v.isInteger ? 'Integer' : 'Float';
  if (Array.isArray(v)) return 'Array';
  return 'Hash';
}

function article(name: string): string {
  return /^[AEIOU]/.test(name) ? 'an' : 'a';
}

/** True when `t`, ignoring sizes, ranges and element types, is about the same kind of value as `v`. */
function sameKind(t: PuppetType, v: JsonValue): boolean {
  const r = resolved(t);
  switch (r.kind) {
    case 'String':
    case 'StringValue':
    case 'Enum':
    case 'Pattern':
      return typeof v === 'string';
    case 'Integer':
      return v instanceof JsonNumber && v.isInteger;
    case 'Float':
      return v instanceof JsonNumber && !v.isInteger;
    case 'Boolean':
      return typeof v === 'boolean';
    case 'Array':
    case 'Tuple':
      return Array.isArray(v);
    case 'Hash':
    case 'Struct':
      return isJsonObject(v);
    case 'Optional':
    case 'NotUndef':
      return sameKind(r.type, v);
    case 'Variant':
      return r.types.some((x) => sameKind(x, v));
    case 'Sensitive':
      // Any present value was meant for it; its own message explains why it can never match.
      return v !== null;
    default:
      return false;
  }
}

function joinOr(names: string[]): string {
  if (names.length <= 2) return names.join(' or ');
  return `${names.slice(0, -1).join(', ')}, or ${names[names.length - 1]}`;
}

function sizeProblem(path: string, n: number, min: number, max: number | null): string {
  if (max === null) return `${path} expects size to be at least ${min}, got ${n}`;
  if (min === 0) return `${path} expects size to be at most ${max}, got ${n}`;
  if (min === max) return `${path} expects size to be ${min}, got ${n}`;
  return `${path} expects size to be between ${min} and ${max}, got ${n}`;
}

/**
 * Why `v` is not an instance of `t`, one line per problem, in Puppet's words
 * (`TypeMismatchDescriber`, docs/task-format.md §4): `path` is the subject (`parameter 'opts'`),
 * extended with `entry 'k'` / `index 2` for nested values. Empty when `v` matches.
 */
export function describeMismatch(t: PuppetType, v: JsonValue, path: string): string[] {
  if (isInstance(t, v)) return [];
  const expects = (name: string) => [`${path} expects ${article(name)} ${name} value, got ${valueTypeName(v)}`];
  switch (t.kind) {
    case 'Undef':
    case 'Scalar':
    case 'ScalarData':
    case 'Numeric':
    case 'Boolean':
    case 'Float':
      return expects(describeType(t));
    case 'NotUndef':
      return v === null ? [`${path} expects a value`] : describeMismatch(t.type, v, path);
    case 'String':
      return [`${path} expects ${article('String')} ${describeType(t)} value, got ${valueTypeName(v)}`];
    case 'Integer':
      if (v instanceof JsonNumber && v.isInteger) return [`${path} expects an ${describeType(t)} value, got Integer[${v.lexeme}, ${v.lexeme}]`];
      return expects(describeType(t));
    case 'StringValue':
    case 'Enum':
    case 'Pattern':
      return [`${path} expects a match for ${describeType(t)}, got ${typeof v === 'string' ? quote(v) : valueTypeName(v)}`];
    case 'Optional':
    case 'Variant': {
      const alternatives = t.kind === 'Optional' ? [{ kind: 'Undef' } as PuppetType, t.type] : flattenVariant(t.types);
      const candidates = alternatives.filter((a) => sameKind(a, v));
      if (candidates.length === 1) return describeMismatch(candidates[0], v, path);
      if (alternatives.length === 0) return [`${path} expects a value of type Variant[] (nothing matches), got ${valueTypeName(v)}`];
      return [`${path} expects a value of type ${joinOr(alternatives.map(describeType))}, got ${valueTypeName(v)}`];
    }
    case 'Array':
    case 'Tuple': {
      if (!Array.isArray(v)) return expects(t.kind);
      if (!inSize(v.length, t.min, t.max)) return [sizeProblem(path, v.length, t.min, t.max)];
      const out: string[] = [];
      v.forEach((e, i) => out.push(...describeMismatch(t.kind === 'Array' ? t.element : t.types[Math.min(i, t.types.length - 1)], e, `${path} index ${i}`)));
      return out;
    }
    case 'Collection':
      if (!Array.isArray(v) && !isJsonObject(v)) return expects('Collection');
      return [sizeProblem(path, Array.isArray(v) ? v.length : Object.keys(v).length, t.min, t.max)];
    case 'Hash': {
      if (!isJsonObject(v)) return expects('Hash');
      const keys = Object.keys(v);
      if (!inSize(keys.length, t.min, t.max)) return [sizeProblem(path, keys.length, t.min, t.max)];
      const out: string[] = [];
      for (const k of keys) {
        if (!isInstance(t.key, k)) out.push(`${path} key ${quote(k)} expects ${article(describeType(t.key))} ${describeType(t.key)} value, got String`);
        else out.push(...describeMismatch(t.value, v[k], `${path} entry ${quote(k)}`));
      }
      return out;
    }
    case 'Struct': {
      if (!isJsonObject(v)) return expects('Struct');
      const out: string[] = [];
      const known = new Map(t.members.map((m) => [m.key, m]));
      for (const m of t.members) {
        if (!(m.key in v)) {
          if (!structKeyOptional(m)) out.push(`${path} expects a value for key ${quote(m.key)}`);
        } else out.push(...describeMismatch(m.type, v[m.key], `${path} entry ${quote(m.key)}`));
      }
      for (const k of Object.keys(v)) if (!known.has(k)) out.push(`${path} unrecognized key ${quote(k)}`);
      return out;
    }
    case 'Sensitive':
      return [
        `${path} expects ${article('Sensitive')} ${describeType(t)} value, got ${valueTypeName(v)} (a value from JSON is never Sensitive; declare the parameter "sensitive": true instead)`,
      ];
    case 'Never':
      return [`${path} expects ${article(t.name)} ${t.text} value, got ${valueTypeName(v)} (no JSON value is ${article(t.name)} ${t.name})`];
    case 'Unresolved':
      return [`${path} references an unresolved type '${t.name}'`];
    case 'Alias':
      return describeMismatch(t.resolve(), v, path);
    case 'Any':
    case 'Data':
      return [];
  }
}

/** Variant members with nested Variants and Optionals spread out (`Optional[T]` = `Undef`, `T`), as Puppet lists them. */
function flattenVariant(types: PuppetType[]): PuppetType[] {
  const out: PuppetType[] = [];
  for (const t of types) {
    if (t.kind === 'Variant') out.push(...flattenVariant(t.types));
    else if (t.kind === 'Optional') out.push({ kind: 'Undef' }, ...flattenVariant([t.type]));
    else out.push(t);
  }
  return out;
}
