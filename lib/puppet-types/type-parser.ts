import { translateRubyRegex, RubyRegexError, type RubyRegex } from './ruby-regex';
import type { PuppetType, StructMember } from './puppet-type';
import { tokenizeType, type TypeToken } from './type-tokenizer';
import { TypeSyntaxError } from './type-syntax-error';

/**
 * Recursive-descent parser for Puppet type expressions (docs/task-format.md §7.3) → `PuppetType`.
 * Parsing is in two steps, as in Puppet: the expression grammar (names, `[...]` access, literals,
 * `{k => v}` hashes) yields generic arguments; each type then interprets its own arguments
 * (`TypeParser#interpret_AccessExpression`), which is where `Enum[LG,no]` fails.
 */

/** Where non-built-in type names are looked up (module type aliases, `types/*.pp`). */
export interface TypeAliasLookup {
  /** The alias node for `name`, or undefined when no module defines it. */
  lookup(name: string): PuppetType | undefined;
}

/** Options of `parseType`. */
export interface ParseTypeOptions {
  /** Module type aliases; without it every non-built-in name is an unresolved reference. */
  aliases?: TypeAliasLookup;
}

type Arg =
  | { a: 'type'; name: string; args: Arg[] | null; pos: number }
  | { a: 'int'; value: bigint; pos: number }
  | { a: 'float'; value: number; pos: number }
  | { a: 'string'; value: string; pos: number; bare: boolean }
  | { a: 'regex'; source: string; pos: number }
  | { a: 'default'; pos: number }
  | { a: 'bool'; value: boolean; pos: number }
  | { a: 'undef'; pos: number }
  | { a: 'hash'; entries: Array<[Arg, Arg]>; pos: number };

/** Nesting deeper than this is refused, so a hostile type string cannot exhaust the stack. */
export const MAX_TYPE_DEPTH = 64;

/** Parses a type expression; throws TypeSyntaxError (only) when it is not a valid Puppet type. */
export function parseType(expr: string, options: ParseTypeOptions = {}): PuppetType {
  const tokens = tokenizeType(expr);
  let k = 0;
  const fail = (pos: number, expected: string): never => {
    throw new TypeSyntaxError(expr, pos, expected);
  };
  const peek = (): TypeToken => tokens[k];
  const isPunct = (tok: TypeToken, text: string) => tok.t === 'PUNCT' && tok.text === text;
  const describe = (tok: TypeToken): string => {
    switch (tok.t) {
      case 'END':
        return 'the end of the expression';
      case 'PUNCT':
      case 'TYPE':
      case 'WORD':
        return `'${tok.text}'`;
      case 'STRING':
        return `the string '${tok.value}'`;
      case 'REGEX':
        return `the regex /${tok.source}/`;
      default:
        return `the number ${tok.value}`;
    }
  };

  const parseArg = (depth: number): Arg => {
    if (depth > MAX_TYPE_DEPTH) fail(peek().pos, `at most ${MAX_TYPE_DEPTH} levels of nesting`);
    const tok = tokens[k++];
    switch (tok.t) {
      case 'TYPE': {
        if (!isPunct(peek(), '[')) return { a: 'type', name: tok.text, args: null, pos: tok.pos };
        k++;
        return { a: 'type', name: tok.text, args: parseList(']', depth), pos: tok.pos };
      }
      case 'INTEGER':
        return { a: 'int', value: tok.value, pos: tok.pos };
      case 'FLOAT':
        return { a: 'float', value: tok.value, pos: tok.pos };
      case 'STRING':
        return { a: 'string', value: tok.value, pos: tok.pos, bare: false };
      case 'REGEX':
        return { a: 'regex', source: tok.source, pos: tok.pos };
      case 'WORD':
        if (tok.text === 'default') return { a: 'default', pos: tok.pos };
        if (tok.text === 'true' || tok.text === 'false') return { a: 'bool', value: tok.text === 'true', pos: tok.pos };
        if (tok.text === 'undef') return { a: 'undef', pos: tok.pos };
        return { a: 'string', value: tok.text, pos: tok.pos, bare: true };
      case 'PUNCT':
        if (tok.text === '{') {
          const entries: Array<[Arg, Arg]> = [];
          while (!isPunct(peek(), '}')) {
            const key = parseArg(depth + 1);
            if (!isPunct(peek(), '=>')) fail(peek().pos, `'=>' after a hash key, not ${describe(peek())}`);
            k++;
            entries.push([key, parseArg(depth + 1)]);
            if (isPunct(peek(), ',')) k++;
            else if (!isPunct(peek(), '}')) fail(peek().pos, `',' or '}' in a hash, not ${describe(peek())}`);
          }
          k++;
          return { a: 'hash', entries, pos: tok.pos };
        }
        return fail(tok.pos, `a type or value, not ${describe(tok)}`);
      case 'END':
        return fail(tok.pos, 'a type or value, not the end of the expression');
    }
  };

  /** Comma-separated arguments up to `close` (a trailing comma is allowed, as in Puppet). */
  const parseList = (close: string, depth: number): Arg[] => {
    const args: Arg[] = [];
    while (!isPunct(peek(), close)) {
      args.push(parseArg(depth + 1));
      if (isPunct(peek(), ',')) k++;
      else if (!isPunct(peek(), close)) fail(peek().pos, `',' or '${close}' after a type parameter, not ${describe(peek())}`);
    }
    k++;
    return args;
  };

  const top = parseArg(0);
  if (peek().t !== 'END') fail(peek().pos, `the end of the expression, not ${describe(peek())}`);
  if (top.a !== 'type') fail(top.pos, 'a type name (a capitalised word such as String or Optional)');
  return interpret(expr, top, options);
}

const NEVER_TYPES = new Set([
  'binary',
  'callable',
  'catalogentry',
  'class',
  'default',
  'deferred',
  'error',
  'init',
  'iterable',
  'iterator',
  'object',
  'regexp',
  'resource',
  'runtime',
  'semver',
  'semverrange',
  'timespan',
  'timestamp',
  'type',
  'uri',
  'typeset',
  'typealias',
  'typereference',
]);

function interpret(expr: string, node: Arg, options: ParseTypeOptions): PuppetType {
  const fail = (pos: number, expected: string): never => {
    throw new TypeSyntaxError(expr, pos, expected);
  };
  const asType = (arg: Arg, allowString = false): PuppetType => {
    if (arg.a === 'type') return typeOf(arg);
    if (allowString && arg.a === 'string') return { kind: 'StringValue', value: arg.value };
    return fail(arg.pos, 'a type');
  };
  const intOrDefault = (arg: Arg | undefined, what: string): bigint | null => {
    if (arg === undefined || arg.a === 'default') return null;
    if (arg.a === 'int') return arg.value;
    return fail(arg.pos, `an integer or default for ${what}`);
  };
  const size = (arg: Arg | undefined, what: string, dflt: number | null): number | null => {
    const v = intOrDefault(arg, what);
    if (v === null) return dflt;
    if (v < 0n) fail(arg!.pos, `a non-negative ${what}`);
    return Number(v);
  };
  const sizePair = (args: Arg[], at: number, name: string): { min: number; max: number | null } => {
    const min = size(args[at], `the minimum size of ${name}`, 0) ?? 0;
    const max = size(args[at + 1], `the maximum size of ${name}`, null);
    if (max !== null && min > max) fail(args[at].pos, `a minimum size of ${name} not above its maximum (${min} > ${max})`);
    return { min, max };
  };
  const arity = (t: Extract<Arg, { a: 'type' }>, min: number, max: number) => {
    const n = t.args?.length ?? 0;
    if (t.args !== null && n < min) fail(t.pos, `at least ${min} parameter${min === 1 ? '' : 's'} for ${t.name}`);
    if (n > max)
      fail(t.args![max].pos, max === 0 ? `no parameters for ${t.name} (it takes none)` : `at most ${max} parameter${max === 1 ? '' : 's'} for ${t.name}`);
  };
  const regexOf = (arg: Arg, name: string): RubyRegex => {
    if (arg.a !== 'regex' && arg.a !== 'string') return fail(arg.pos, `a regex /.../ or a string for ${name}`);
    const source = arg.a === 'regex' ? arg.source : arg.value;
    try {
      return translateRubyRegex(source);
    } catch (err) {
      if (err instanceof RubyRegexError) return fail(arg.pos, `a regex Baton can run in linear time: ${err.message}`);
      throw err;
    }
  };

  function typeOf(t: Extract<Arg, { a: 'type' }>): PuppetType {
    const args = t.args ?? [];
    const lname = t.name.toLowerCase();
    switch (lname) {
      case 'any':
      case 'undef':
      case 'data':
      case 'richdata':
      case 'scalar':
      case 'scalardata':
      case 'numeric': {
        arity(t, 0, 0);
        const kinds = { any: 'Any', undef: 'Undef', data: 'Data', richdata: 'Data', scalar: 'Scalar', scalardata: 'ScalarData', numeric: 'Numeric' } as const;
        return { kind: kinds[lname] };
      }
      case 'notundef':
        arity(t, 0, 1);
        return { kind: 'NotUndef', type: args[0] ? asType(args[0], true) : { kind: 'Any' } };
      case 'string': {
        arity(t, 0, 2);
        if (args.length === 1 && args[0].a === 'type' && args[0].name.toLowerCase() === 'integer') {
          const range = typeOf(args[0]);
          if (range.kind !== 'Integer') throw new Error('unreachable');
          return { kind: 'String', min: range.min === null || range.min < 0n ? 0 : Number(range.min), max: range.max === null ? null : Number(range.max) };
        }
        const { min, max } = sizePair(args, 0, 'String');
        return { kind: 'String', min, max };
      }
      case 'integer': {
        arity(t, 0, 2);
        const min = intOrDefault(args[0], 'the Integer lower bound');
        const max = intOrDefault(args[1], 'the Integer upper bound');
        if (min !== null && max !== null && min > max) fail(args[0].pos, `an Integer lower bound not above its upper bound (${min} > ${max})`);
        return { kind: 'Integer', min, max };
      }
      case 'float': {
        arity(t, 0, 2);
        const num = (arg: Arg | undefined, what: string): number | null => {
          if (arg === undefined || arg.a === 'default') return null;
          if (arg.a === 'int') return Number(arg.value);
          if (arg.a === 'float') return arg.value;
          return fail(arg.pos, `a number or default for ${what}`);
        };
        const min = num(args[0], 'the Float lower bound');
        const max = num(args[1], 'the Float upper bound');
        if (min !== null && max !== null && min > max) fail(args[0].pos, `a Float lower bound not above its upper bound (${min} > ${max})`);
        return { kind: 'Float', min, max };
      }
      case 'boolean': {
        arity(t, 0, 1);
        if (args.length === 0) return { kind: 'Boolean', value: null };
        if (args[0].a !== 'bool') return fail(args[0].pos, 'true or false for Boolean');
        return { kind: 'Boolean', value: args[0].value };
      }
      case 'enum': {
        // A bare `Enum` has no values to restrict by: Puppet's unparameterised PEnumType accepts
        // every String.
        if (t.args === null) return { kind: 'String', min: 0, max: null };
        arity(t, 1, Infinity);
        let caseInsensitive = false;
        let list = args;
        const last = args[args.length - 1];
        if (last.a === 'bool' && args.length > 1) {
          caseInsensitive = last.value;
          list = args.slice(0, -1);
        }
        const values: string[] = [];
        for (const a of list) {
          if (a.a === 'string') values.push(a.value);
          else if (a.a === 'type')
            fail(
              a.pos,
              `identifiers or strings as Enum parameters; '${a.name}' is capitalised, so Puppet reads it as a type reference (quote it: '${a.name}')`,
            );
          else fail(a.pos, `identifiers or strings as Enum parameters (quote numbers and keywords: Enum['8140'])`);
        }
        // Puppet keeps Enum values deduplicated and sorted (docs/task-format.md §7.2), which is how
        // they print.
        return { kind: 'Enum', values: [...new Set(values)].sort(), caseInsensitive };
      }
      case 'pattern':
        return { kind: 'Pattern', patterns: args.map((a) => regexOf(a, 'Pattern')) };
      case 'optional':
        arity(t, 0, 1);
        return { kind: 'Optional', type: args[0] ? asType(args[0], true) : { kind: 'Any' } };
      case 'variant':
        return { kind: 'Variant', types: args.map((a) => asType(a)) };
      case 'array': {
        arity(t, 0, 3);
        if (args[0] && args[0].a !== 'type') {
          arity(t, 0, 2);
          return { kind: 'Array', element: { kind: 'Any' }, ...sizePair(args, 0, 'Array') };
        }
        return { kind: 'Array', element: args[0] ? asType(args[0]) : { kind: 'Any' }, ...sizePair(args, 1, 'Array') };
      }
      case 'hash': {
        arity(t, 0, 4);
        if (args[0] && args[0].a !== 'type') {
          arity(t, 0, 2);
          return { kind: 'Hash', key: { kind: 'Any' }, value: { kind: 'Any' }, ...sizePair(args, 0, 'Hash') };
        }
        if (args.length === 1) fail(t.pos, 'a key type and a value type for Hash (Hash[K, V]), not a key type alone');
        return {
          kind: 'Hash',
          key: args[0] ? asType(args[0]) : { kind: 'Any' },
          value: args[1] ? asType(args[1]) : { kind: 'Any' },
          ...sizePair(args, 2, 'Hash'),
        };
      }
      case 'collection':
        arity(t, 0, 2);
        return { kind: 'Collection', ...sizePair(args, 0, 'Collection') };
      case 'tuple': {
        let n = args.length;
        while (n > 0 && (args[n - 1].a === 'int' || args[n - 1].a === 'default')) n--;
        if (args.length - n > 2) fail(args[n + 2].pos, 'at most two size parameters at the end of Tuple');
        const types = args.slice(0, n).map((a) => asType(a));
        if (args.length === n) return { kind: 'Tuple', types, min: types.length, max: types.length, sized: false };
        const min = size(args[n], 'the minimum size of Tuple', 0) ?? 0;
        const max = n + 1 < args.length ? size(args[n + 1], 'the maximum size of Tuple', null) : null;
        if (max !== null && min > max) fail(args[n].pos, `a minimum size of Tuple not above its maximum (${min} > ${max})`);
        if (types.length === 0 && (max === null || max > 0)) fail(t.pos, 'at least one element type for a sized Tuple');
        return { kind: 'Tuple', types, min, max, sized: true };
      }
      case 'struct': {
        arity(t, 0, 1);
        if (args.length === 0) return { kind: 'Struct', members: [] };
        const h = args[0];
        if (h.a !== 'hash') return fail(h.pos, "a hash {'key' => Type, ...} for Struct");
        const members: StructMember[] = [];
        for (const [key, value] of h.entries) {
          const type = asType(value);
          let name: string;
          let written: StructMember['written'] = 'PLAIN';
          if (key.a === 'string') name = key.value;
          else if (key.a === 'type' && ['optional', 'notundef'].includes(key.name.toLowerCase()) && key.args?.length === 1 && key.args[0].a === 'string') {
            name = key.args[0].value;
            written = key.name.toLowerCase() === 'optional' ? 'OPTIONAL' : 'NOT_UNDEF';
          } else return fail(key.pos, "a Struct key: a string, Optional['key'] or NotUndef['key']");
          if (members.some((m) => m.key === name)) fail(key.pos, `distinct Struct keys ('${name}' is given twice)`);
          members.push({ key: name, type, written });
        }
        return { kind: 'Struct', members };
      }
      case 'sensitive':
        arity(t, 0, 1);
        return { kind: 'Sensitive', type: args[0] ? asType(args[0]) : { kind: 'Any' } };
      default:
        break;
    }
    if (NEVER_TYPES.has(lname)) {
      if (lname === 'regexp') args.forEach((a) => regexOf(a, 'Regexp'));
      return { kind: 'Never', name: t.name, text: expr.slice(t.pos, endOf(t)) };
    }
    if (t.args !== null) fail(t.pos, `no parameters after the type alias ${t.name}`);
    return options.aliases?.lookup(t.name) ?? { kind: 'Unresolved', name: t.name };
  }

  /** Source end of a type node, for displaying a Never type as written. */
  function endOf(a: Arg): number {
    let depth = 0;
    for (let i = a.pos; i < expr.length; i++) {
      if (expr[i] === '[') depth++;
      else if (expr[i] === ']') {
        if (depth === 0) return i;
        depth--;
        if (depth === 0) return i + 1;
      } else if (depth === 0 && /[,}=\s]/.test(expr[i])) return i;
    }
    return expr.length;
  }

  return asType(node);
}
