import type Ajv from 'ajv';
import type { AnySchemaObject, SchemaObject } from 'ajv';
import { linearRegex } from '../linear-regex';
import { JsonNumber, type JsonValue } from './json-lexeme';
import { structKeyOptional, type PuppetType } from './puppet-type';
import { asciiFold, integerInRange, isJsonObject } from './type-instance';

/**
 * Puppet types as JSON Schema for ajv: standard keywords wherever JSON Schema
 * says the same thing (`enum`, `const`, `type: string|boolean|array|null`, `minLength`/`maxLength`
 * — ajv counts code points, as Ruby does —, `items`, `minItems`, `properties`, `required`,
 * `additionalProperties`, `propertyNames`, `anyOf`, `not`, `$ref` for aliases), and small custom
 * keywords where it cannot:
 *
 * - `pInteger` / `pFloat` / `pNumeric`: numbers arrive as `JsonNumber` (lexeme kept), so the
 *   Integer/Float split follows the text as written and integer bounds compare exactly (bigint);
 * - `pHash` / `pScalar`: "a JSON object" / "a scalar" in that representation (a `JsonNumber` is a
 *   JavaScript object, so `type: object` would accept it);
 * - `pEnumCI`: case-insensitive Enum, ASCII folding as Ruby's `casecmp`;
 * - `pPattern`: Ruby regexes translated to RE2 (linear time), unanchored search (JSON Schema's
 *   `pattern` is ECMA-262 with the `u` flag, which is not Ruby's dialect).
 */

const NOTHING: SchemaObject = { not: {} };

/** The shared ajv instance with Baton's Puppet keywords. */
export function puppetAjv(): Ajv {
  // `optimize: false`: ajv's extra code-generation passes cost more than half of compile time
  // (bench/puppet-types-bench.ts) and validation measured no slower without them.
  // Required here, not at the top: a process that only coerces values (the `baton` CLI) never
  // compiles a schema, and ajv is a large part of its start-up.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const AjvClass = (require('ajv') as typeof import('ajv')).default;
  const ajv = new AjvClass({ strict: false, allErrors: false, validateSchema: false, addUsedSchema: false, inlineRefs: true, code: { optimize: false } });
  ajv.addKeyword({
    keyword: 'pInteger',
    errors: false,
    compile: (s: { min?: string; max?: string }) => {
      const min = s.min === undefined ? null : BigInt(s.min);
      const max = s.max === undefined ? null : BigInt(s.max);
      return (v: JsonValue) => v instanceof JsonNumber && v.isInteger && integerInRange(v, min, max);
    },
  });
  ajv.addKeyword({
    keyword: 'pFloat',
    errors: false,
    compile: (s: { min?: number; max?: number }) => (v: JsonValue) =>
      v instanceof JsonNumber && !v.isInteger && (s.min === undefined || v.value >= s.min) && (s.max === undefined || v.value <= s.max),
  });
  ajv.addKeyword({ keyword: 'pNumeric', errors: false, compile: () => (v: JsonValue) => v instanceof JsonNumber });
  ajv.addKeyword({
    keyword: 'pScalar',
    errors: false,
    compile: () => (v: JsonValue) => typeof v === 'string' || typeof v === 'boolean' || v instanceof JsonNumber,
  });
  ajv.addKeyword({ keyword: 'pHash', errors: false, compile: () => (v: JsonValue) => isJsonObject(v) });
  ajv.addKeyword({
    keyword: 'pEnumCI',
    errors: false,
    compile: (values: string[]) => {
      const set = new Set(values);
      return (v: JsonValue) => typeof v === 'string' && set.has(asciiFold(v));
    },
  });
  ajv.addKeyword({
    keyword: 'pPattern',
    errors: false,
    compile: (patterns: Array<{ re2: string; caseInsensitive: boolean }>) => {
      const regexes = patterns.map((p) => linearRegex(p.re2, { caseInsensitive: p.caseInsensitive }));
      return (v: JsonValue) => typeof v === 'string' && (regexes.length === 0 || regexes.some((r) => r.test(v)));
    },
  });
  return ajv;
}

/** Builds schemas for types, collecting aliases into shared `definitions` (so recursive aliases work). */
export class SchemaBuilder {
  readonly definitions: Record<string, AnySchemaObject> = {};
  private readonly aliasIds = new Map<string, string>();

  /** The schema of `t`; referenced aliases are added to `definitions`. */
  schema(t: PuppetType): AnySchemaObject {
    const size = (min: number, max: number | null, lo: string, hi: string) => ({ ...(min > 0 ? { [lo]: min } : {}), ...(max !== null ? { [hi]: max } : {}) });
    switch (t.kind) {
      case 'Any':
      case 'Data':
        return {};
      case 'Undef':
        return { type: 'null' };
      case 'NotUndef':
        return { allOf: [{ not: { type: 'null' } }, this.schema(t.type)] };
      case 'Scalar':
      case 'ScalarData':
        return { pScalar: true };
      case 'String':
        return { type: 'string', ...size(t.min, t.max, 'minLength', 'maxLength') };
      case 'StringValue':
        return { const: t.value };
      case 'Integer':
        return { pInteger: { ...(t.min !== null ? { min: t.min.toString() } : {}), ...(t.max !== null ? { max: t.max.toString() } : {}) } };
      case 'Float':
        return { pFloat: { ...(t.min !== null ? { min: t.min } : {}), ...(t.max !== null ? { max: t.max } : {}) } };
      case 'Numeric':
        return { pNumeric: true };
      case 'Boolean':
        return t.value === null ? { type: 'boolean' } : { const: t.value };
      case 'Enum':
        return t.caseInsensitive ? { pEnumCI: t.values.map(asciiFold) } : { enum: t.values };
      case 'Pattern':
        return { pPattern: t.patterns.map((p) => ({ re2: p.re2, caseInsensitive: p.caseInsensitive })) };
      case 'Optional':
        return { anyOf: [{ type: 'null' }, this.schema(t.type)] };
      case 'Variant':
        return t.types.length === 0 ? NOTHING : { anyOf: t.types.map((x) => this.schema(x)) };
      case 'Array':
        return { type: 'array', ...(t.element.kind === 'Any' ? {} : { items: this.schema(t.element) }), ...size(t.min, t.max, 'minItems', 'maxItems') };
      case 'Tuple': {
        if (t.types.length === 0) return { type: 'array', maxItems: 0 };
        const items = t.types.map((x) => this.schema(x));
        return { type: 'array', items, additionalItems: items[items.length - 1], ...size(t.min, t.max, 'minItems', 'maxItems') };
      }
      case 'Hash':
        return {
          pHash: true,
          ...(t.key.kind === 'Any' ? {} : { propertyNames: this.schema(t.key) }),
          ...(t.value.kind === 'Any' ? {} : { additionalProperties: this.schema(t.value) }),
          ...size(t.min, t.max, 'minProperties', 'maxProperties'),
        };
      case 'Collection':
        return {
          anyOf: [
            { type: 'array', ...size(t.min, t.max, 'minItems', 'maxItems') },
            { pHash: true, ...size(t.min, t.max, 'minProperties', 'maxProperties') },
          ],
        };
      case 'Struct':
        return {
          pHash: true,
          properties: Object.fromEntries(t.members.map((m) => [m.key, this.schema(m.type)])),
          required: t.members.filter((m) => !structKeyOptional(m)).map((m) => m.key),
          additionalProperties: false,
        };
      case 'Sensitive':
      case 'Never':
      case 'Unresolved':
        return NOTHING;
      case 'Alias': {
        let id = this.aliasIds.get(t.name);
        if (id === undefined) {
          id = `a${this.aliasIds.size}`;
          this.aliasIds.set(t.name, id);
          this.definitions[id] = this.schema(t.resolve());
        }
        return { $ref: `#/definitions/${id}` };
      }
    }
  }
}
