import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseJsonLexemes } from './json-lexeme';
import { describeType } from './puppet-type';
import { compileSignature } from './signature';
import { parseType } from './type-parser';
import { TypeSyntaxError } from './type-syntax-error';
import { corpusLocation } from '../../test/helpers/corpus';
import { seededRandom } from '../../test/helpers/random';

/**
 * Property test: no type string crashes or hangs the parser. A fixed-seed
 * generator produces grammar-shaped types, mutations of every corpus expression, and random
 * strings; each must parse or throw TypeSyntaxError, never anything else, within a time bound.
 * What parses must compile, validate sample inputs without throwing, and print back to a type
 * that parses to the same printed form.
 */

const SEED = 0x5eed_2026;
const random = seededRandom(SEED);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
const int = (n: number) => Math.floor(random() * n);

const LEAVES = [
  'Any',
  'Undef',
  'NotUndef',
  'Data',
  'Scalar',
  'ScalarData',
  'String',
  'Integer',
  'Float',
  'Numeric',
  'Boolean',
  'Array',
  'Hash',
  'Pattern',
  'Timestamp',
  'Mod::Alias',
];
const ARGS = ['1', '0', '-1', '2', 'default', '0.5', 'true', 'false', "'a'", 'b', '/x+/', '/\\A\\w+\\z/', "'c d'", 'undef', '0x1f', '07'];

function genType(depth: number): string {
  if (depth > 4 || random() < 0.3) return pick(LEAVES);
  const sub = () => genType(depth + 1);
  switch (int(12)) {
    case 0:
      return `Optional[${sub()}]`;
    case 1:
      return `Variant[${Array.from({ length: int(4) }, sub).join(', ')}]`;
    case 2:
      return `Array[${sub()}${random() < 0.5 ? `, ${int(3)}` : ''}${random() < 0.3 ? `, ${pick(['default', '5', '1'])}` : ''}]`;
    case 3:
      return `Hash[${pick(['String', 'Integer', 'Pattern[/k/]', 'Enum[a,b]'])}, ${sub()}${random() < 0.4 ? `, ${int(3)}` : ''}]`;
    case 4:
      return `Tuple[${Array.from({ length: 1 + int(3) }, sub).join(', ')}${random() < 0.4 ? `, ${int(3)}` : ''}]`;
    case 5:
      return `Struct[{${Array.from({ length: int(4) }, (_, i) => `${pick(['', 'Optional[', 'NotUndef['])}'k${i}'`.replace(/\[('k\d+')$/, '[$1]') + ` => ${sub()}`).join(', ')}}]`;
    case 6:
      return `Enum[${Array.from({ length: 1 + int(4) }, () => pick(['a', "'B'", 'c-d', '"e f"', '_g'])).join(', ')}${random() < 0.3 ? ', true' : ''}]`;
    case 7:
      return `Pattern[${Array.from({ length: int(3) }, () => pick(['/^a$/', "'b+'", '/\\d{,2}/', '/[[:alpha:]]/', '/(?i)x/'])).join(', ')}]`;
    case 8:
      return `Integer[${pick(['-5', 'default', '0', '99999999999999999999'])}${random() < 0.6 ? `, ${pick(['default', '10', '99999999999999999999999'])}` : ''}]`;
    case 9:
      return `String[${int(3)}${random() < 0.5 ? `, ${pick(['3', 'default', '10'])}` : ''}]`;
    case 10:
      return `NotUndef[${sub()}]`;
    default:
      return `${pick(['Sensitive', 'Optional', 'Float', 'Boolean'])}[${pick(ARGS)}]`;
  }
}

const ALPHABET = '[]{},\'"/\\=> aZ09-_:.#$@\n\t()|^*+?';

function mutate(s: string): string {
  let out = s;
  for (let n = 1 + int(3); n > 0; n--) {
    const i = int(out.length + 1);
    switch (int(6)) {
      case 0:
        out = out.slice(0, i) + out.slice(i + 1);
        break;
      case 1:
        out = out.slice(0, i) + pick([...ALPHABET]) + out.slice(i);
        break;
      case 2: {
        const j = int(out.length + 1);
        out = out.slice(0, Math.min(i, j)) + out.slice(Math.max(i, j)) + out.slice(Math.min(i, j), Math.max(i, j));
        break;
      }
      case 3:
        out = out.slice(0, i);
        break;
      case 4: {
        const j = i + int(10);
        out = out.slice(0, j) + out.slice(i, j) + out.slice(j);
        break;
      }
      default:
        out = out.slice(0, i) + pick(['[', ']', ',', '=>', "'", '/', 'Optional[', 'default', '-']) + out.slice(i);
    }
  }
  return out;
}

function corpusExpressions(dir: string): string[] {
  const out = new Set<string>();
  for (const mod of readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory())) {
    for (const f of readdirSync(join(dir, mod.name)).filter((x) => x.endsWith('.json'))) {
      const meta = JSON.parse(readFileSync(join(dir, mod.name, f), 'utf8')) as { parameters?: Record<string, { type?: string }> };
      for (const p of Object.values(meta.parameters ?? {})) out.add(p.type ?? 'Data');
    }
  }
  return [...out];
}

/**
 * Longest a single parse may take: a hang detector, not a speed test (a parse normally takes a
 * tiny fraction of it; the bound leaves room for GC pauses while the whole suite loads both cores).
 */
const PARSE_BOUND_MS = 1000;
const VALUES = ['null', '1', '1.5', '"a"', '""', 'true', '[]', '[1, "a"]', '{}', '{"k0": 1}', '99999999999999999999'].map((j) => parseJsonLexemes(j).value);

function check(expr: string, stats: { parsed: number; refused: number }): void {
  const started = performance.now();
  let printed: string;
  try {
    const t = parseType(expr);
    printed = describeType(t);
    stats.parsed++;
  } catch (err) {
    if (!(err instanceof TypeSyntaxError)) assert.fail(`parseType(${JSON.stringify(expr)}) threw ${String(err)}`);
    assert.ok(!err.message.includes('\n') || expr.includes('\n'), `one-line message for ${JSON.stringify(expr)}`);
    stats.refused++;
    return;
  } finally {
    const took = performance.now() - started;
    assert.ok(took < PARSE_BOUND_MS, `parseType(${JSON.stringify(expr)}) took ${took.toFixed(1)} ms`);
  }
  assert.equal(describeType(parseType(printed)), printed, `round trip of ${JSON.stringify(expr)} via ${printed}`);
  // Compiling is far dearer than parsing (ajv generates code); every fourth parsed type keeps the
  // suite fast.
  if (stats.parsed % 4 !== 0) return;
  const sig = compileSignature({ p: { type: expr } });
  for (const v of VALUES) sig.validateMembers([{ key: 'p', value: v, json: '' }]);
}

describe('parseType under fuzzing (seed 0x5eed2026)', () => {
  const corpus = corpusLocation();

  it('never throws anything but TypeSyntaxError on generated and random type strings, and never hangs', () => {
    const stats = { parsed: 0, refused: 0 };
    for (let i = 0; i < 2000; i++) check(genType(0), stats);
    for (let i = 0; i < 1500; i++) check(mutate(genType(0)), stats);
    for (let i = 0; i < 1000; i++) check(Array.from({ length: int(30) }, () => pick([...ALPHABET, 'String', 'Enum', 'Optional'])).join(''), stats);
    for (const deep of [
      'Optional['.repeat(5000),
      '['.repeat(5000),
      `Variant[${'String,'.repeat(5000)}]`,
      `Enum[${"'a',".repeat(5000)}]`,
      "'".repeat(5000),
      '/'.repeat(5001),
    ])
      check(deep, stats);
    // Both outcomes must be well represented, or the generator is not exercising the parser.
    assert.ok(stats.parsed > 1500, `parsed ${stats.parsed}`);
    assert.ok(stats.refused > 1500, `refused ${stats.refused}`);
  });

  it("never throws anything but TypeSyntaxError on mutations of the corpus's type expressions", { skip: corpus.skip }, () => {
    const stats = { parsed: 0, refused: 0 };
    const expressions = corpusExpressions(corpus.dir ?? '');
    assert.equal(expressions.length, 64); // 64 written expressions; the corpus's 65th type is the untyped parameter (Data)
    for (const expr of expressions) for (let i = 0; i < 40; i++) check(mutate(expr), stats);
    assert.ok(stats.parsed > 200, `parsed ${stats.parsed}`);
    assert.ok(stats.refused > 200, `refused ${stats.refused}`);
  });
});
