import type { RubyRegex } from './ruby-regex';

/**
 * The typed AST of a Puppet type expression (docs/task-format.md §7.2, §7.3). One node per type the
 * reference lists; types no JSON value can ever match (`Regexp`, `Timestamp`, `Object`, ...)
 * are kept by name as `Never` so they can be displayed and warned about at load time.
 */
export type PuppetType =
  | { kind: 'Any' }
  | { kind: 'Undef' }
  | { kind: 'NotUndef'; type: PuppetType }
  | { kind: 'Data' }
  | { kind: 'Scalar' }
  | { kind: 'ScalarData' }
  | { kind: 'String'; min: number; max: number | null }
  /** `'x'` written as a type parameter (`Optional['x']`, `NotUndef['x']`): exactly that string. */
  | { kind: 'StringValue'; value: string }
  /** Bounds are bigints: Puppet integers are unbounded (docs/task-format.md §7.1). `null` = unbounded side. */
  | { kind: 'Integer'; min: bigint | null; max: bigint | null }
  | { kind: 'Float'; min: number | null; max: number | null }
  | { kind: 'Numeric' }
  | { kind: 'Boolean'; value: boolean | null }
  | { kind: 'Enum'; values: string[]; caseInsensitive: boolean }
  | { kind: 'Pattern'; patterns: RubyRegex[] }
  | { kind: 'Optional'; type: PuppetType }
  | { kind: 'Variant'; types: PuppetType[] }
  | { kind: 'Array'; element: PuppetType; min: number; max: number | null }
  | { kind: 'Hash'; key: PuppetType; value: PuppetType; min: number; max: number | null }
  | { kind: 'Collection'; min: number; max: number | null }
  | { kind: 'Tuple'; types: PuppetType[]; min: number; max: number | null; sized: boolean }
  | { kind: 'Struct'; members: StructMember[] }
  | { kind: 'Sensitive'; type: PuppetType }
  /** A built-in type no value parsed from JSON can be an instance of (docs/task-format.md §7.2). */
  | { kind: 'Never'; name: string; text: string }
  /** A module type alias (`types/*.pp`), resolved lazily on first use. */
  | { kind: 'Alias'; name: string; resolve: () => PuppetType }
  /** A capitalised name that is neither built in nor a known alias: never matches (docs/task-format.md §7.2). */
  | { kind: 'Unresolved'; name: string };

/** One `key => type` of a Struct. `written` is how the key was wrapped (`'k'`, `Optional['k']`, `NotUndef['k']`). */
export interface StructMember {
  key: string;
  type: PuppetType;
  written: 'PLAIN' | 'OPTIONAL' | 'NOT_UNDEF';
}

/**
 * True when a Struct key may be absent (docs/task-format.md §7.2, Struct): `Optional['k']` always,
 * `NotUndef['k']` never, a plain `'k'` iff its type accepts undef. Decided at use, not at parse,
 * because the type may be an alias resolved later.
 */
export function structKeyOptional(m: StructMember): boolean {
  return m.written === 'OPTIONAL' || (m.written === 'PLAIN' && acceptsUndef(m.type));
}

/** Follows aliases to the type they name (one level at a time, so a cycle is the resolver's business). */
export function resolved(t: PuppetType): PuppetType {
  let cur = t;
  for (let i = 0; cur.kind === 'Alias'; i++) {
    if (i > 100) throw new Error(`type alias ${cur.name} does not resolve to a type`);
    cur = cur.resolve();
  }
  return cur;
}

/**
 * True when the type accepts undef (JSON null / an absent key): such a parameter is optional
 * (docs/task-format.md §4 step 4: `Optional`, `Undef`, `Any`, `Data`, a Variant containing one of
 * those).
 */
export function acceptsUndef(t: PuppetType): boolean {
  const r = resolved(t);
  switch (r.kind) {
    case 'Any':
    case 'Undef':
    case 'Data':
    case 'Optional':
      return true;
    case 'Variant':
      return r.types.some(acceptsUndef);
    default:
      return false;
  }
}

function bound(v: number | bigint | null, unbounded: string): string {
  return v === null ? unbounded : String(v);
}

/** Quotes a string the way Puppet prints it in type expressions (`'it\'s'`). */
export function quote(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function sizeArgs(min: number, max: number | null, defaultMin = 0): string[] {
  if (min === defaultMin && max === null) return [];
  return max === null ? [String(min)] : [String(min), String(max)];
}

/**
 * The type as Puppet prints it (`Enum['a', 'b']`, `Integer[1]`, `Optional[String[1]]`), used in
 * error messages and listings. Aliases print their name.
 */
export function describeType(t: PuppetType): string {
  const withArgs = (name: string, args: string[]) => (args.length === 0 ? name : `${name}[${args.join(', ')}]`);
  switch (t.kind) {
    case 'Any':
    case 'Undef':
    case 'Data':
    case 'Scalar':
    case 'ScalarData':
    case 'Numeric':
      return t.kind;
    case 'NotUndef':
      return t.type.kind === 'Any' ? 'NotUndef' : withArgs('NotUndef', [describeType(t.type)]);
    case 'String':
      return withArgs('String', t.max === null ? (t.min === 0 ? [] : [String(t.min)]) : [String(t.min), String(t.max)]);
    case 'StringValue':
      return quote(t.value);
    case 'Integer':
      if (t.min === null && t.max === null) return 'Integer';
      return withArgs('Integer', t.max === null ? [bound(t.min, 'default')] : [bound(t.min, 'default'), bound(t.max, 'default')]);
    case 'Float':
      if (t.min === null && t.max === null) return 'Float';
      return withArgs('Float', t.max === null ? [bound(t.min, 'default')] : [bound(t.min, 'default'), bound(t.max, 'default')]);
    case 'Boolean':
      return t.value === null ? 'Boolean' : `Boolean[${t.value}]`;
    case 'Enum':
      return withArgs('Enum', [...t.values.map(quote), ...(t.caseInsensitive ? ['true'] : [])]);
    case 'Pattern':
      return withArgs(
        'Pattern',
        t.patterns.map((p) => `/${p.source.replace(/\//g, '\\/')}/`),
      );
    case 'Optional':
      return withArgs('Optional', [describeType(t.type)]);
    case 'Variant':
      return `Variant[${t.types.map(describeType).join(', ')}]`;
    case 'Array': {
      const size = sizeArgs(t.min, t.max);
      return withArgs('Array', t.element.kind === 'Any' && size.length === 0 ? [] : [describeType(t.element), ...size]);
    }
    case 'Hash': {
      const size = sizeArgs(t.min, t.max);
      const anyAny = t.key.kind === 'Any' && t.value.kind === 'Any';
      return withArgs('Hash', anyAny && size.length === 0 ? [] : [describeType(t.key), describeType(t.value), ...size]);
    }
    case 'Collection':
      return withArgs('Collection', sizeArgs(t.min, t.max));
    case 'Tuple':
      return withArgs('Tuple', [...t.types.map(describeType), ...(t.sized ? [String(t.min), ...(t.max === null ? [] : [String(t.max)])] : [])]);
    case 'Struct':
      return `Struct[{${t.members
        .map(
          (m) =>
            `${m.written === 'PLAIN' ? quote(m.key) : `${m.written === 'OPTIONAL' ? 'Optional' : 'NotUndef'}[${quote(m.key)}]`} => ${describeType(m.type)}`,
        )
        .join(', ')}}]`;
    case 'Sensitive':
      return withArgs('Sensitive', [describeType(t.type)]);
    case 'Never':
      return t.text;
    case 'Alias':
    case 'Unresolved':
      return t.name;
  }
}

/** Names of unresolved type references anywhere in the type (reported at load time: they never match). */
export function unresolvedReferences(t: PuppetType, seen = new Set<string>()): string[] {
  return typeReferences(t, seen).unresolved;
}

/** Names of the aliases a type uses (through other aliases too), and of the references nothing declares. */
export function typeReferences(t: PuppetType, seen = new Set<string>()): { aliases: string[]; unresolved: string[] } {
  const unresolved: string[] = [];
  const aliases: string[] = [];
  const walk = (x: PuppetType): void => {
    switch (x.kind) {
      case 'Unresolved':
        unresolved.push(x.name);
        return;
      case 'Alias':
        if (seen.has(x.name)) return;
        seen.add(x.name);
        aliases.push(x.name);
        walk(x.resolve());
        return;
      case 'NotUndef':
      case 'Optional':
      case 'Sensitive':
        walk(x.type);
        return;
      case 'Variant':
      case 'Tuple':
        x.types.forEach(walk);
        return;
      case 'Array':
        walk(x.element);
        return;
      case 'Hash':
        walk(x.key);
        walk(x.value);
        return;
      case 'Struct':
        x.members.forEach((m) => walk(m.type));
        return;
      default:
        return;
    }
  };
  walk(t);
  return { aliases: [...new Set(aliases)], unresolved: [...new Set(unresolved)] };
}
