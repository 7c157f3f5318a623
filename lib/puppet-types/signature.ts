import { quote } from '../quote';
import type { ValidateFunction } from 'ajv';
import { fromPlain, parseJsonLexemes, stringifyJsonValue, JsonSyntaxError, type JsonObject, type JsonValue } from './json-lexeme';
import { acceptsUndef, describeType, unresolvedReferences, type PuppetType } from './puppet-type';
import { TypeAliasError } from './type-aliases';
import { describeMismatch, isInstance, isJsonObject, valueTypeName } from './type-instance';
import { parseType, type TypeAliasLookup } from './type-parser';
import { puppetAjv, SchemaBuilder } from './type-schema';
import { TypeSyntaxError } from './type-syntax-error';

/** One parameter as the task metadata declares it (docs/task-format.md §2.2). */
export interface ParameterDeclaration {
  /** Puppet type expression; absent means `Data` (docs/task-format.md §2.2). */
  type?: string;
  /** Default for an absent or null value, as a plain JSON value. */
  default?: unknown;
  sensitive?: boolean;
}

/** A parameter of a compiled signature. */
export interface CompiledParameter {
  name: string;
  /** The type expression as written (`Data` when none was given). */
  typeText: string;
  type: PuppetType;
  /** True when the type accepts undef, so the parameter may be omitted (docs/task-format.md §4 step 4). */
  optional: boolean;
  sensitive: boolean;
  /** The default as a value, and as JSON text; undefined when there is none (or it is null). */
  default?: JsonValue;
  defaultJson?: string;
}

/** A parameter whose type cannot be used: its expression is not valid Puppet, or an alias it uses is broken. */
export class InvalidParameterTypeError extends Error {
  constructor(
    readonly parameter: string,
    readonly typeText: string,
    override readonly cause: TypeSyntaxError | TypeAliasError,
  ) {
    super(`parameter '${parameter}' has an invalid type: ${cause.message}`);
    this.name = 'InvalidParameterTypeError';
  }
}

/** One problem with an input: `field` is the parameter name (or the key given), `description` one line in Puppet's words. */
export interface InputViolation {
  field: string;
  description: string;
}

/** A top-level key of the input with its value and the value's JSON text (given values exactly as written). */
export interface InputEntry {
  key: string;
  value: JsonValue;
  json: string;
}

/** The outcome of `Signature.validate`. */
export interface SignatureValidation {
  /** The input's members in order, defaults applied in place of null and appended for absent keys. */
  entries: InputEntry[];
  violations: InputViolation[];
}

/** Keys of a task without declared parameters: `Hash[Pattern[/\A[a-z][a-z0-9_]*\z/], Data]` (docs/task-format.md §4 step 4). */
export const UNDECLARED_KEY = /^[a-z][a-z0-9_]*$/;

/** Where the input as a whole is at fault (not JSON, not an object). */
export class InputShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputShapeError';
  }
}

/** The result of coercing one command-line string (docs/task-format.md §8). */
export interface CoercedValue {
  value: JsonValue;
  /** JSON text of the value: the argument as written when its JSON was kept, a JSON string otherwise. */
  json: string;
}

/**
 * Bolt's `key=value` rule (docs/task-format.md §8): parse the string as JSON (scalars allowed);
 * keep the parsed value if the parameter has no declared type or the value matches it, else keep
 * the string. `count=5` with Integer → 5; `name=5` with String → "5"; `s='"q"'` with String → q.
 * When neither fits, the parsed value is kept, so the type error names the value as given
 * (`count=99` with Integer[1,10] is refused as the Integer 99, not as "a String").
 */
export function coerceCliValue(type: PuppetType | undefined, raw: string): CoercedValue {
  let parsed: { value: JsonValue } | undefined;
  try {
    parsed = { value: parseJsonLexemes(raw).value };
    if (type === undefined || isInstance(type, parsed.value)) return { value: parsed.value, json: stringifyJsonValue(parsed.value) };
  } catch (err) {
    if (!(err instanceof JsonSyntaxError)) throw err;
  }
  if (parsed && type !== undefined && !isInstance(type, raw)) return { value: parsed.value, json: stringifyJsonValue(parsed.value) };
  return { value: raw, json: JSON.stringify(raw) };
}

/** The shared ajv instance, made on the first compiled check (see `Signature.check`). */
let sharedAjv: ReturnType<typeof puppetAjv> | undefined;
function ajvInstance(): ReturnType<typeof puppetAjv> {
  return (sharedAjv ??= puppetAjv());
}

/** Options of `compileSignature`. */
export interface CompileSignatureOptions {
  /** Module type aliases of the task's environment. */
  aliases?: TypeAliasLookup;
}

/**
 * A task's parameters compiled once into a validator (compiling is the slow part; checking an input
 * is then cheap): Puppet's Struct rules for the parameter set, ajv for the yes/no check, and the
 * type-mismatch describer to word each problem when the check fails.
 */
export class Signature {
  /** False when the metadata has no `parameters` key: any well-named keys are accepted. */
  readonly declared: boolean;
  readonly parameters: CompiledParameter[];
  /**
   * Load-time warnings: parameters whose type references an unresolved alias or can never be
   * matched by a JSON value (docs/task-format.md §7.2). The signature still works; such values are
   * refused.
   */
  readonly problems: string[];
  private readonly byName: Map<string, CompiledParameter>;
  private compiled: ValidateFunction | undefined;
  /** The schema handed to ajv, kept to release it with `dispose`. */
  private readonly schema: object;

  /** Compiles `parameters` (undefined/null = not declared); throws InvalidParameterTypeError. */
  constructor(parameters: Record<string, ParameterDeclaration> | null | undefined, options: CompileSignatureOptions = {}) {
    this.declared = parameters !== undefined && parameters !== null;
    this.parameters = [];
    this.problems = [];
    const builder = new SchemaBuilder();
    const properties: Record<string, object> = {};
    for (const [name, decl] of Object.entries(parameters ?? {})) {
      const typeText = decl.type ?? 'Data';
      let type: PuppetType;
      try {
        type = parseType(typeText, { aliases: options.aliases });
        properties[name] = builder.schema(type);
        const unresolved = unresolvedReferences(type);
        if (unresolved.length > 0) {
          this.problems.push(
            `parameter '${name}' references an unresolved type ${unresolved.map((u) => `'${u}'`).join(', ')} (no module of the environment declares it in types/*.pp); no value can match it`,
          );
        }
      } catch (err) {
        if (err instanceof TypeSyntaxError || err instanceof TypeAliasError) throw new InvalidParameterTypeError(name, typeText, err);
        throw err;
      }
      const p: CompiledParameter = { name, typeText, type, optional: acceptsUndef(type), sensitive: decl.sensitive === true };
      if (decl.default !== undefined && decl.default !== null) {
        p.default = fromPlain(decl.default);
        p.defaultJson = stringifyJsonValue(p.default);
      }
      this.parameters.push(p);
    }
    this.byName = new Map(this.parameters.map((p) => [p.name, p]));
    this.schema = this.declared
      ? {
          pHash: true,
          properties,
          required: this.parameters.filter((p) => !p.optional).map((p) => p.name),
          additionalProperties: false,
          definitions: builder.definitions,
        }
      : { pHash: true, propertyNames: { type: 'string', pattern: UNDECLARED_KEY.source } };
  }

  /** The yes/no validator, compiled on first use: coercing command-line values never needs it. */
  private get check(): ValidateFunction {
    return (this.compiled ??= ajvInstance().compile(this.schema));
  }

  /** The parameter called `name`, if declared. */
  parameter(name: string): CompiledParameter | undefined {
    return this.byName.get(name);
  }

  /** Coerces a `name=value` command-line string for this task (docs/task-format.md §8). */
  coerce(name: string, raw: string): CoercedValue {
    return coerceCliValue(this.byName.get(name)?.type, raw);
  }

  /**
   * Validates input JSON text (docs/task-format.md §4): defaults for absent or null parameters,
   * then the parameter Struct. Throws InputShapeError when the text is not a JSON object.
   */
  validate(inputJson: string): SignatureValidation {
    let parsed;
    try {
      parsed = parseJsonLexemes(inputJson);
    } catch (err) {
      if (err instanceof JsonSyntaxError) throw new InputShapeError(`input must be a JSON object: ${err.message}`);
      throw err;
    }
    if (!isJsonObject(parsed.value) || parsed.members === null) throw new InputShapeError(`input must be a JSON object, got ${valueTypeName(parsed.value)}`);
    return this.validateMembers(parsed.members);
  }

  /** Validates an input already split into members (see `validate`). */
  validateMembers(given: InputEntry[]): SignatureValidation {
    const violations: InputViolation[] = [];
    const entries: InputEntry[] = [];
    const index = new Map<string, number>();
    for (const m of given) {
      if (index.has(m.key)) {
        // JSON.parse keeps the last duplicate silently; a person who wrote a key twice meant one of
        // them.
        violations.push({ field: m.key, description: `gives parameter ${quote(m.key)} more than once` });
        entries[index.get(m.key)!] = m;
        continue;
      }
      index.set(m.key, entries.length);
      entries.push(m);
    }
    for (const p of this.parameters) {
      if (p.default === undefined) continue;
      const at = index.get(p.name);
      // Defaults replace absent and null values alike (docs/task-format.md §2.2, §4 step 3).
      if (at === undefined) {
        index.set(p.name, entries.length);
        entries.push({ key: p.name, value: p.default, json: p.defaultJson! });
      } else if (entries[at].value === null) entries[at] = { key: p.name, value: p.default, json: p.defaultJson! };
    }
    const object = Object.create(null) as JsonObject;
    for (const e of entries) object[e.key] = e.value;
    if (violations.length === 0 && this.check(object)) return { entries, violations };
    violations.push(...this.describe(entries));
    return { entries, violations };
  }

  /**
   * Every problem, one per line: keys that are not parameters in input order, then each declared
   * parameter in declaration order (Puppet's Struct describer walks the struct's members).
   */
  private describe(entries: InputEntry[]): InputViolation[] {
    const out: InputViolation[] = [];
    const given = new Map<string, InputEntry>();
    for (const e of entries) {
      if (given.has(e.key)) continue;
      given.set(e.key, e);
      if (e.key.startsWith('_')) {
        // Metaparameters (`_task`, `_noop`, `_installdir`, `_target`) are Baton's to set
        // (docs/task-format.md §5.6); letting a caller pass `_noop` would bypass the supports_noop
        // check.
        out.push({ field: e.key, description: `has no parameter named ${quote(e.key)} (keys starting with '_' are metaparameters set by Baton)` });
      } else if (!this.declared) {
        if (!UNDECLARED_KEY.test(e.key))
          out.push({ field: e.key, description: `has an invalid parameter name ${quote(e.key)} (expected ${UNDECLARED_KEY.source})` });
      } else if (!this.byName.has(e.key)) out.push({ field: e.key, description: `has no parameter named ${quote(e.key)}` });
    }
    for (const p of this.parameters) {
      const e = given.get(p.name);
      if (e) for (const line of describeMismatch(p.type, e.value, `parameter '${p.name}'`)) out.push({ field: p.name, description: line });
      else if (!p.optional) out.push({ field: p.name, description: `expects a value for parameter '${p.name}'` });
    }
    return out;
  }

  /** Releases the compiled validator from ajv's cache (called when a cache evicts the signature). */
  dispose(): void {
    if (this.compiled) ajvInstance().removeSchema(this.schema);
  }
}

/** Compiles a task's `parameters` (absent/null = any well-named keys accepted); throws InvalidParameterTypeError. */
export function compileSignature(parameters: Record<string, ParameterDeclaration> | null | undefined, options: CompileSignatureOptions = {}): Signature {
  return new Signature(parameters, options);
}

/** The outcome of `checkParameterTypes`: every unusable type, and every load-time warning. */
export interface ParameterTypeReport {
  /** Parameters whose type is not valid Puppet or uses a broken alias: the task cannot run. */
  errors: InvalidParameterTypeError[];
  /** Parameters whose type can never match (unresolved alias, `Sensitive`, `Timestamp`, ...). */
  warnings: string[];
}

/**
 * Checks every parameter type of a task's metadata at load time, so a bad type fails the task
 * when it is loaded rather than its first run (docs/task-format.md §1 item 11), reporting all
 * problems rather than the first, for a catalog that lists broken tasks with their reasons.
 */
export function checkParameterTypes(
  parameters: Record<string, ParameterDeclaration> | null | undefined,
  options: CompileSignatureOptions = {},
): ParameterTypeReport {
  const report: ParameterTypeReport = { errors: [], warnings: [] };
  for (const [name, decl] of Object.entries(parameters ?? {})) {
    const typeText = decl.type ?? 'Data';
    try {
      const type = parseType(typeText, { aliases: options.aliases });
      new SchemaBuilder().schema(type); // resolves every alias the type uses
      const unresolved = unresolvedReferences(type);
      if (unresolved.length > 0)
        report.warnings.push(`parameter '${name}' references an unresolved type ${unresolved.map((u) => `'${u}'`).join(', ')}; no value can match it`);
      else if (!acceptsUndef(type) && neverMatches(type))
        report.warnings.push(`parameter '${name}' has type ${describeType(type)}, which no JSON value can match`);
    } catch (err) {
      if (err instanceof TypeSyntaxError || err instanceof TypeAliasError) report.errors.push(new InvalidParameterTypeError(name, typeText, err));
      else throw err;
    }
  }
  return report;
}

/** True for types no value from JSON can match at all (docs/task-format.md §7.2). */
function neverMatches(t: PuppetType): boolean {
  switch (t.kind) {
    case 'Sensitive':
    case 'Never':
    case 'Unresolved':
      return true;
    case 'Variant':
      return t.types.every(neverMatches);
    case 'NotUndef':
      return neverMatches(t.type);
    case 'Alias':
      return neverMatches(t.resolve());
    default:
      return false;
  }
}

/** Display form of a parameter type for listings: the parsed type as Puppet prints it. */
export function displayType(p: CompiledParameter): string {
  return describeType(p.type);
}
