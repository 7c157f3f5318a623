/**
 * A JSON parser that keeps each number's lexeme (docs/task-format.md §7.1): Puppet reads `1` as an
 * Integer and `1.0`/`1e3` as Floats, and integers beyond 2^53 are exact. `JSON.parse` loses
 * both, so validation runs on this representation instead: numbers become `JsonNumber`
 * objects (lexeme + kind), everything else is the plain JSON value, and objects have no
 * prototype (a `__proto__` key is data, not a prototype change).
 *
 * Chosen over ajv-on-a-reviver because Node 20's `JSON.parse` reviver has no access to the
 * source text; a small scanner is also what lets task-input report duplicate keys and re-emit
 * each given value exactly as written.
 */

/** A JSON number as written. */
export class JsonNumber {
  constructor(
    readonly lexeme: string,
    /** True for a lexeme without `.`, `e` or `E`: a Puppet Integer. */
    readonly isInteger: boolean,
  ) {}

  /** The value as a JavaScript number (may round; use `bigint` for exact integers). */
  get value(): number {
    return Number(this.lexeme);
  }

  /** The exact integer; only for `isInteger` numbers. */
  get bigint(): bigint {
    return BigInt(this.lexeme);
  }
}

/** A JSON value with number lexemes kept. */
export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;
/** A JSON object (prototype-less). */
export interface JsonObject {
  [key: string]: JsonValue;
}

/** Invalid JSON text: the message says where and what was expected, like `JSON.parse`'s. */
export class JsonSyntaxError extends Error {
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(message);
    this.name = 'JsonSyntaxError';
  }
}

/** One member of the top-level object, with the source span of its value. */
export interface TopLevelMember {
  key: string;
  value: JsonValue;
  /** The value's exact source text. */
  json: string;
}

/** The result of `parseJsonLexemes`. */
export interface ParsedJson {
  value: JsonValue;
  /** When the text is an object: its members in order, duplicates included. */
  members: TopLevelMember[] | null;
}

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

/** Parses JSON text keeping number lexemes; throws JsonSyntaxError. */
export function parseJsonLexemes(text: string): ParsedJson {
  let i = 0;
  let members: TopLevelMember[] | null = null;
  const n = text.length;
  const fail = (expected: string): never => {
    const got = i >= n ? 'the end of the input' : `'${text[i]}'`;
    throw new JsonSyntaxError(`expected ${expected} at position ${i}, got ${got}`, i);
  };
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 10 || c === 13 || c === 9) i++;
      else break;
    }
  };
  const str = (): string => {
    const start = ++i;
    let out = '';
    let from = start;
    for (;;) {
      if (i >= n) fail('a closing " for the string');
      const c = text.charCodeAt(i);
      if (c === 34) {
        out += text.slice(from, i);
        i++;
        return out;
      }
      if (c < 32) fail('no control characters in a string (escape them)');
      if (c === 92) {
        out += text.slice(from, i);
        const e = text[i + 1];
        switch (e) {
          case '"':
            out += '"';
            break;
          case '\\':
            out += '\\';
            break;
          case '/':
            out += '/';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'n':
            out += '\n';
            break;
          case 'r':
            out += '\r';
            break;
          case 't':
            out += '\t';
            break;
          case 'u': {
            const hex = text.slice(i + 2, i + 6);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
              i += 2;
              fail('four hex digits after \\u');
            }
            out += String.fromCharCode(parseInt(hex, 16));
            i += 4;
            break;
          }
          default:
            i++;
            fail('a valid escape after \\');
        }
        i += 2;
        from = i;
        continue;
      }
      i++;
    }
  };
  const value = (depth: number): JsonValue => {
    if (depth > 512) fail('at most 512 levels of nesting');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj = Object.create(null) as JsonObject;
      const top = depth === 0 ? (members = [] as TopLevelMember[]) : null;
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('a string key');
        const key = str();
        ws();
        if (text[i] !== ':') fail("':' after an object key");
        i++;
        ws();
        const start = i;
        const v = value(depth + 1);
        if (top) top.push({ key, value: v, json: text.slice(start, i) });
        obj[key] = v;
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return obj;
        }
        fail("',' or '}' in an object");
      }
    }
    if (c === '[') {
      i++;
      const arr: JsonValue[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value(depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return arr;
        }
        fail("',' or ']' in an array");
      }
    }
    if (c === '"') return str();
    if (text.startsWith('true', i)) {
      i += 4;
      return true;
    }
    if (text.startsWith('false', i)) {
      i += 5;
      return false;
    }
    if (text.startsWith('null', i)) {
      i += 4;
      return null;
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) return fail('a JSON value');
    i += m[0].length;
    return new JsonNumber(m[0], m[1] === undefined && m[2] === undefined);
  };
  const v = value(0);
  ws();
  if (i < n) fail('the end of the input');
  return { value: v, members };
}

/** A plain JavaScript value (`JSON.parse`-like) as a lexeme-kept value: numbers keep integer-ness by `Number.isInteger`. */
export function fromPlain(v: unknown): JsonValue {
  if (v === null || v === undefined) return null;
  if (typeof v === 'number') return new JsonNumber(JSON.stringify(v), Number.isInteger(v));
  if (typeof v === 'bigint') return new JsonNumber(v.toString(), true);
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (Array.isArray(v)) return v.map(fromPlain);
  if (v instanceof JsonNumber) return v;
  const o = Object.create(null) as JsonObject;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) o[k] = fromPlain(x);
  return o;
}

/** A lexeme-kept value as a plain JavaScript value (numbers as JavaScript numbers). */
export function toPlain(v: JsonValue): unknown {
  if (v instanceof JsonNumber) return v.value;
  if (Array.isArray(v)) return v.map(toPlain);
  if (v !== null && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v)) Object.defineProperty(o, k, { value: toPlain(v[k]), enumerable: true, writable: true, configurable: true });
    return o;
  }
  return v;
}

/** The value as JSON text, numbers exactly as written. */
export function stringifyJsonValue(v: JsonValue): string {
  if (v instanceof JsonNumber) return v.lexeme;
  if (Array.isArray(v)) return `[${v.map(stringifyJsonValue).join(',')}]`;
  if (v !== null && typeof v === 'object')
    return `{${Object.keys(v)
      .map((k) => `${JSON.stringify(k)}:${stringifyJsonValue(v[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}
