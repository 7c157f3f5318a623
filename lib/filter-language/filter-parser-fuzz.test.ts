import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { evaluate, type NodeView } from './evaluate';
import { BOLT_TASK_FIELDS, COMPARE_OPS, type FilterExpr, type FilterTerm } from './filter-expr';
import { parseCompound } from './filter-parser';
import { FilterSyntaxError } from './filter-syntax-error';
import { formatExpr } from './format-expr';
import { seededRandom } from '../../test/helpers/random';
import { quote } from '../quote';

/**
 * Property test: no input crashes or hangs the parser. A fixed-seed generator
 * produces grammar-shaped expressions, mutations of them and random strings; each must parse or
 * throw FilterSyntaxError (nothing else) within a time bound. Whatever parses must evaluate
 * without throwing and print to text that parses back to the same AST; random ASTs with awkward
 * names, quotes and slashes must survive print → parse too.
 */

const SEED = 0x5eed_0005;
const random = seededRandom(SEED);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
const int = (n: number) => Math.floor(random() * n);

/**
 * Slowest single parse accepted: a hang detector, not a speed test. A parse takes microseconds
 * to a few milliseconds; the bound leaves room for GC pauses and a 2-core machine whose cores
 * the rest of the suite keeps busy, and still catches any backtracking blow-up.
 */
const MAX_PARSE_MS = 1000;

const ID = 'ae561842dc7d5a9dae94f766dfb3d4c8';
const WORDS = [
  'apache',
  'role::web',
  'os.family',
  'memory',
  'Debian',
  '4096',
  '-1.5',
  'true',
  'false',
  'and',
  'or',
  'not',
  'fact',
  'with',
  'x.y.z',
  '.5',
  'a-b',
];
const OPS_WRITTEN = ['==', '=', '!=', '<', '>', '<=', '>=', '=<', '=>', '=~'];
const VALUES = ['Debian', '4096', '0', "'a b'", '"it\\"s"', "'it\\'s'", '/^deb/', '/a\\/b/', 'true', "''", '-3', '/x(/', '/[/', '1e3'];

function genTerm(): string {
  switch (int(7)) {
    case 0:
      return pick(WORDS);
    case 1:
      return pick(['/web/', '/^role::/', '/a\\/b/', '/(/']);
    case 2:
      return `${pick(WORDS)}${pick(['', ' '])}${pick(OPS_WRITTEN)}${pick(['', ' '])}${pick(VALUES)}`;
    case 3:
      return `fact(${pick(["'os.family'", '"a b"', "''", 'x'])}) ${pick(OPS_WRITTEN)} ${pick(VALUES)}`;
    case 4:
      return `with(${pick(["'a=b'", "'apache'", "'/x/'", "'m>=1'", "''", "'a b'"])})`;
    case 5:
      return `bolt_task(${pick([`'${ID}'`, `"${ID}"`, "'xyz'"])}).${pick([...BOLT_TASK_FIELDS, 'nope'])} ${pick(OPS_WRITTEN)} ${pick(VALUES)}`;
    default:
      return pick(['(', ')', '!', 'not', 'and', 'or', '~', '.', "'", '/']);
  }
}

function genExpr(depth: number): string {
  if (depth > 5 || random() < 0.35) return genTerm();
  const sub = () => genExpr(depth + 1);
  switch (int(4)) {
    case 0:
      return `${sub()} ${pick(['and', 'or', 'AND', 'Or'])} ${sub()}`;
    case 1:
      return `${pick(['not ', '!', 'NOT '])}${sub()}`;
    case 2:
      return `(${sub()})`;
    default:
      return `${sub()}${pick([' and ', ' or ', ' '])}${sub()}`;
  }
}

const ALPHABET = '()!=<>~\'"/.\\ \tabcdeflnortw_:-019 ';

function mutate(s: string): string {
  const chars = [...s];
  for (let n = 1 + int(3); n > 0; n--) {
    const at = int(chars.length + 1);
    switch (int(4)) {
      case 0:
        chars.splice(at, 1);
        break;
      case 1:
        chars.splice(at, 0, pick([...ALPHABET]));
        break;
      case 2:
        chars.splice(at, 0, ...chars.slice(int(chars.length), int(chars.length)));
        break;
      default:
        chars.splice(0, at);
    }
  }
  return chars.join('');
}

function randomString(): string {
  return Array.from({ length: int(40) }, () => (random() < 0.9 ? pick([...ALPHABET]) : String.fromCharCode(int(0x3000)))).join('');
}

const node: NodeView = {
  identity: 'n1',
  facts: { os: { family: 'Debian' }, memory: 4096, a: 'b', x: { y: { z: true } } },
  classes: ['apache', 'role::web'],
  agents: ['rpcutil'],
};
const lookup = () => ({ exitcode: 1, stdout: 'x', known: true, completed: false });

/** Parses `text`: an AST, or null for a FilterSyntaxError; anything else fails the test. */
function parseOrNull(text: string): FilterExpr | null {
  const started = performance.now();
  try {
    return parseCompound(text);
  } catch (err) {
    if (!(err instanceof FilterSyntaxError)) throw new Error(`${JSON.stringify(text)} threw ${String(err)}`);
    assert.ok(!err.message.includes('\n'), err.message);
    assert.ok(err.column >= 1 && err.column <= text.length + 1, `${err.message}: column out of range`);
    return null;
  } finally {
    const ms = performance.now() - started;
    assert.ok(ms < MAX_PARSE_MS, `${quote(text)} took ${ms.toFixed(1)} ms`);
  }
}

function checkRoundTrip(expr: FilterExpr, source: string): void {
  const printed = formatExpr(expr);
  let again: FilterExpr;
  try {
    again = parseCompound(printed);
  } catch (err) {
    throw new Error(`${JSON.stringify(source)} printed as ${JSON.stringify(printed)}, which does not parse: ${(err as Error).message}`);
  }
  assert.deepEqual(again, expr, `${JSON.stringify(source)} printed as ${JSON.stringify(printed)}`);
  evaluate(expr, node, lookup);
}

describe('filter parser property test', () => {
  it('parses or rejects 6000 generated, mutated and random expressions, and what parses round-trips', () => {
    let parsed = 0;
    const corpus: string[] = [];
    for (let i = 0; i < 2000; i++) corpus.push(genExpr(0));
    const inputs = [...corpus, ...corpus.map(mutate), ...Array.from({ length: 2000 }, randomString)];
    for (const text of inputs) {
      const expr = parseOrNull(text);
      if (expr) {
        parsed++;
        checkRoundTrip(expr, text);
      }
    }
    // The generator must exercise both outcomes, or the property says little.
    assert.ok(parsed > 1000, `only ${parsed} of ${inputs.length} parsed`);
    assert.ok(inputs.length - parsed > 1000, `only ${inputs.length - parsed} rejected`);
  });

  it('does not hang or overflow the stack on long and deeply nested input', () => {
    for (const text of [
      '('.repeat(100_000),
      '!'.repeat(100_000) + 'a',
      'a and '.repeat(10_000) + 'a',
      "'".repeat(30_001),
      '/'.repeat(30_001),
      'a = ' + 'x'.repeat(60_000),
      'x'.repeat(70_000),
    ]) {
      parseOrNull(text);
    }
  });

  it('prints 2000 random ASTs with awkward names, quotes and slashes to text that parses back to them', () => {
    const odd = () => pick(['a b', "it's", 'back\\slash', 'x"y', 'and', 'NOT', '', ' lead', 'a.b.c', '(p)', '1.5', 'é ü', 'with', '/slash/', 'a=b', '~']);
    // Regex sources as the parser stores them: a slash is never escaped (see normalizeRegexSource).
    const pattern = () => pick(['^web', 'a/b', '/', '[/]', 'x\\d+', "it's", 'a b', '\\\\']);
    const className = () => pick(['apache', 'role::web', 'a b', "it's", 'x"y', 'é', 'back\\slash']);
    const genAst = (depth: number): FilterExpr => {
      if (depth > 4 || random() < 0.4) return genAstTerm();
      switch (int(3)) {
        case 0:
          return { kind: 'NOT', operand: genAst(depth + 1) };
        default: {
          const kind = pick(['AND', 'OR'] as const);
          const operands = Array.from({ length: 2 + int(3) }, () => genAst(depth + 1)).flatMap((o) => (o.kind === kind ? o.operands : [o]));
          return { kind, operands };
        }
      }
    };
    const genAstTerm = (): FilterTerm => {
      const op = pick(COMPARE_OPS);
      const value = op === '=~' || op === '!~' ? pattern() : odd();
      switch (int(4)) {
        case 0:
          return { kind: 'CLASS', name: className() };
        case 1:
          return { kind: 'CLASS_REGEX', pattern: pattern() };
        case 2:
          return { kind: 'FACT', path: pick([odd(), 'os.family']).replace(/^$/, 'p'), operator: op, value };
        default:
          return { kind: 'BOLT_TASK', taskId: ID, field: pick(BOLT_TASK_FIELDS), operator: op, value };
      }
    };
    for (let i = 0; i < 2000; i++) {
      const expr = genAst(0);
      checkRoundTrip(expr, formatExpr(expr));
    }
  });
});
