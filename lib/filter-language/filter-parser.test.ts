import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BOLT_TASK_FIELDS, type FilterExpr } from './filter-expr';
import { MAX_FILTER_DEPTH, parseCompound } from './filter-parser';
import { excerpt, FilterSyntaxError } from './filter-syntax-error';
import { formatExpr } from './format-expr';
import { referencedTaskIds, termsOf } from './expr-visitor';

const ID = 'ae561842dc7d5a9dae94f766dfb3d4c8';
const ID2 = '0123456789abcdef0123456789abcdef';

const cls = (name: string): FilterExpr => ({ kind: 'CLASS', name });

/** Asserts `text` fails with a FilterSyntaxError at `column` whose expectation contains `expected`. */
function assertSyntaxError(text: string, column: number, expected: string): void {
  assert.throws(
    () => parseCompound(text),
    (err: unknown) => {
      assert.ok(err instanceof FilterSyntaxError, `not a FilterSyntaxError: ${String(err)}`);
      assert.equal(err.column, column, err.message);
      assert.ok(err.expected.includes(expected), err.message);
      assert.equal(err.message, `expected ${err.expected} at column ${column} of ${excerpt(text, column)}`);
      assert.ok(!err.message.includes('\n'));
      return true;
    },
  );
}

describe('parseCompound: boolean structure', () => {
  it('binds not tighter than and, and tighter than or', () => {
    assert.deepEqual(parseCompound('a or b and not c'), {
      kind: 'OR',
      operands: [cls('a'), { kind: 'AND', operands: [cls('b'), { kind: 'NOT', operand: cls('c') }] }],
    });
  });

  it('lets parentheses override precedence', () => {
    assert.deepEqual(parseCompound('(a or b) and c'), { kind: 'AND', operands: [{ kind: 'OR', operands: [cls('a'), cls('b')] }, cls('c')] });
  });

  it('flattens chains and nested groups of the same operator', () => {
    assert.deepEqual(parseCompound('a and (b and c) and d'), { kind: 'AND', operands: [cls('a'), cls('b'), cls('c'), cls('d')] });
    assert.deepEqual(parseCompound('(a or b) or (c)'), { kind: 'OR', operands: [cls('a'), cls('b'), cls('c')] });
  });

  it('reads ! and not alike, keywords in any case, and double negation', () => {
    assert.deepEqual(parseCompound('!a'), parseCompound('not a'));
    assert.deepEqual(parseCompound('A AND NOT b Or c'), parseCompound('A and not b or c'));
    assert.deepEqual(parseCompound('not !a'), { kind: 'NOT', operand: { kind: 'NOT', operand: cls('a') } });
    assert.deepEqual(parseCompound('!(a)'), { kind: 'NOT', operand: cls('a') });
  });
});

describe('parseCompound: terms', () => {
  it('reads a bare word as a class and /regex/ as a class regex', () => {
    assert.deepEqual(parseCompound('apache::mod'), cls('apache::mod'));
    assert.deepEqual(parseCompound('/^web\\d+$/'), { kind: 'CLASS_REGEX', pattern: '^web\\d+$' });
    assert.deepEqual(parseCompound('/a\\/b/'), { kind: 'CLASS_REGEX', pattern: 'a/b' });
  });

  it('reads every operator, normalising = =< => and spacing', () => {
    const cases: [string, string][] = [
      ['==', '=='],
      ['=', '=='],
      ['!=', '!='],
      ['<', '<'],
      ['>', '>'],
      ['<=', '<='],
      ['>=', '>='],
      ['=<', '<='],
      ['=>', '>='],
      ['=~', '=~'],
    ];
    for (const [written, operator] of cases) {
      assert.deepEqual(parseCompound(`memory${written}4096`), { kind: 'FACT', path: 'memory', operator, value: '4096' }, written);
      assert.deepEqual(parseCompound(`memory ${written} 4096`), { kind: 'FACT', path: 'memory', operator, value: '4096' }, written);
    }
  });

  it('turns /regex/ values into matches with = == =~ and into a negated match with !=', () => {
    assert.deepEqual(parseCompound('os=/deb/'), { kind: 'FACT', path: 'os', operator: '=~', value: 'deb' });
    assert.deepEqual(parseCompound('os==/deb/'), { kind: 'FACT', path: 'os', operator: '=~', value: 'deb' });
    assert.deepEqual(parseCompound('os=~/deb/'), { kind: 'FACT', path: 'os', operator: '=~', value: 'deb' });
    assert.deepEqual(parseCompound("os=~'^deb'"), { kind: 'FACT', path: 'os', operator: '=~', value: '^deb' });
    assert.deepEqual(parseCompound('os!=/deb/'), { kind: 'FACT', path: 'os', operator: '!~', value: 'deb' });
  });

  it('reads quoted values with escapes, numbers, booleans and keywords as values', () => {
    assert.deepEqual(parseCompound(`motd = 'it\\'s "here"'`), { kind: 'FACT', path: 'motd', operator: '==', value: `it's "here"` });
    assert.deepEqual(parseCompound(`motd = "a b\\\\"`), { kind: 'FACT', path: 'motd', operator: '==', value: 'a b\\' });
    assert.deepEqual(parseCompound(`x = ''`), { kind: 'FACT', path: 'x', operator: '==', value: '' });
    assert.deepEqual(parseCompound('load < -1.5e3'), { kind: 'FACT', path: 'load', operator: '<', value: '-1.5e3' });
    assert.deepEqual(parseCompound('ratio > .5'), { kind: 'FACT', path: 'ratio', operator: '>', value: '.5' });
    assert.deepEqual(parseCompound('virtual = true'), { kind: 'FACT', path: 'virtual', operator: '==', value: 'true' });
    assert.deepEqual(parseCompound('role = and'), { kind: 'FACT', path: 'role', operator: '==', value: 'and' });
  });

  it("reads fact('dotted.path') with any operator", () => {
    assert.deepEqual(parseCompound(`fact('os.distro.release.major') >= 12`), { kind: 'FACT', path: 'os.distro.release.major', operator: '>=', value: '12' });
    assert.deepEqual(parseCompound(`fact("a b") = /x/`), { kind: 'FACT', path: 'a b', operator: '=~', value: 'x' });
    assert.deepEqual(parseCompound('fact'), cls('fact'));
  });

  it('reads with() as a fact filter when it parses as one, else as a class', () => {
    assert.deepEqual(parseCompound(`with('os.family=Debian')`), { kind: 'FACT', path: 'os.family', operator: '==', value: 'Debian' });
    assert.deepEqual(parseCompound(`with('memory>=4096')`), { kind: 'FACT', path: 'memory', operator: '>=', value: '4096' });
    assert.deepEqual(parseCompound(`with('apache')`), cls('apache'));
    assert.deepEqual(parseCompound(`with('/^web/')`), { kind: 'CLASS_REGEX', pattern: '^web' });
    assert.deepEqual(parseCompound(`with('a=')`), cls('a='));
  });

  it('reads bolt_task() with every field and operator', () => {
    for (const field of BOLT_TASK_FIELDS) {
      assert.deepEqual(parseCompound(`bolt_task('${ID}').${field} != 1`), { kind: 'BOLT_TASK', taskId: ID, field, operator: '!=', value: '1' });
    }
    assert.deepEqual(parseCompound(`bolt_task("${ID}") . stdout =~ /error/`), {
      kind: 'BOLT_TASK',
      taskId: ID,
      field: 'stdout',
      operator: '=~',
      value: 'error',
    });
    assert.deepEqual(parseCompound(`bolt_task('${ID}').known=true and bolt_task('${ID}').exitcode>0`), {
      kind: 'AND',
      operands: [
        { kind: 'BOLT_TASK', taskId: ID, field: 'known', operator: '==', value: 'true' },
        { kind: 'BOLT_TASK', taskId: ID, field: 'exitcode', operator: '>', value: '0' },
      ],
    });
  });
});

describe('parseCompound: errors name the column and what was expected', () => {
  it('reports a missing closing parenthesis', () => assertSyntaxError('(role=web and x', 16, "')'"));
  it('reports a missing term after and', () => assertSyntaxError('(role=web and', 14, 'a class'));
  it('reports a stray closing parenthesis', () => assertSyntaxError('a)', 2, 'closes nothing'));
  it('reports two terms without an operator', () => assertSyntaxError('a b', 3, "'and', 'or'"));
  it('reports an empty expression', () => assertSyntaxError('  ', 3, 'a filter expression'));
  it('reports a missing value', () => assertSyntaxError('a ==', 5, 'a value'));
  it('reports an operator where a term belongs', () => assertSyntaxError('a and == b', 7, 'a class'));
  it('reports an unterminated string', () => assertSyntaxError("a = 'x", 7, "closing '"));
  it('reports an unterminated regex', () => assertSyntaxError('a = /x', 7, 'closing /'));
  it('reports an invalid regex at its first character', () => assertSyntaxError('a = /(x/', 6, 'a valid regular expression'));
  it('reports an invalid =~ text regex', () => assertSyntaxError("a =~ '['", 6, 'a valid regular expression'));
  it('reports a regex after an ordering operator', () => assertSyntaxError('a < /x/', 5, 'a /regex/ goes with'));
  it('reports an unknown function', () => assertSyntaxError("facts('a') = 1", 1, 'a known function'));
  it('reports an unquoted function argument', () => assertSyntaxError('fact(a) = 1', 6, 'a quoted fact path'));
  it('reports a fact() without a comparison', () => assertSyntaxError("fact('a')", 10, 'a comparison operator'));
  it('reports a malformed task id', () => assertSyntaxError("bolt_task('ABC').exitcode > 0", 11, '32 lowercase hex'));
  it('reports an unknown bolt_task field', () => assertSyntaxError(`bolt_task('${ID}').exit > 0`, 47, 'a bolt_task field'));
  it('reports a bolt_task() without a field', () => assertSyntaxError(`bolt_task('${ID}') > 0`, 47, "'.' and a field"));
  it('reports a lone ~', () => assertSyntaxError('a ~ b', 3, "'=~'"));
  it('reports an empty with()', () => assertSyntaxError("with('')", 6, 'with()'));

  it('limits nesting depth and accepts the limit itself', () => {
    const ok = '('.repeat(MAX_FILTER_DEPTH) + 'a' + ')'.repeat(MAX_FILTER_DEPTH);
    assert.deepEqual(parseCompound(ok), cls('a'));
    assertSyntaxError('(' + ok + ')', MAX_FILTER_DEPTH + 1, `at most ${MAX_FILTER_DEPTH} nested`);
    assertSyntaxError('not '.repeat(MAX_FILTER_DEPTH + 1) + 'a', MAX_FILTER_DEPTH * 4 + 1, `at most ${MAX_FILTER_DEPTH} nested`);
  });

  it('refuses 20,000 nested parentheses at the limit, in a short line quoting only the part around the column', () => {
    const deep = '('.repeat(20_000) + 'a' + ')'.repeat(20_000);
    assertSyntaxError(deep, MAX_FILTER_DEPTH + 1, `at most ${MAX_FILTER_DEPTH} nested`);
    try {
      parseCompound(deep);
    } catch (err) {
      assert.ok(err instanceof Error && err.message.length < 300, `a short message, not the 40,001-character input: ${(err as Error).message.length}`);
    }
  });

  it('quotes a short expression whole and a long one around the column', () => {
    assert.equal(excerpt('a and (', 8), '"a and ("');
    const long = 'x'.repeat(500) + '!' + 'y'.repeat(500);
    const quoted = excerpt(long, 501);
    assert.ok(quoted.startsWith('…"') && quoted.endsWith('"…') && quoted.includes('!') && quoted.length < 200, quoted);
  });
});

describe('formatExpr and the visitors', () => {
  it('prints a form that parses back to the same expression', () => {
    for (const text of [
      'a or b and not c',
      '(a or b) and not (c and d)',
      `fact('a b.c') = 'x y' or with('k v') or /a\\/b/ and os != /deb/`,
      `bolt_task('${ID}').stdout =~ 'it\\'s' or x = "it's"`,
      `fact('and') = or and with('a b') and with(' c')`,
    ]) {
      const expr = parseCompound(text);
      assert.deepEqual(parseCompound(formatExpr(expr)), expr, formatExpr(expr));
    }
    assert.equal(formatExpr(parseCompound('a=1 and (b or !c)')), 'a == 1 and (b or not c)');
  });

  it('lists terms in order and the distinct task ids', () => {
    const expr = parseCompound(`web and (bolt_task('${ID}').exitcode > 0 or not bolt_task('${ID2}').known = true) and bolt_task('${ID}').completed = true`);
    assert.deepEqual(
      termsOf(expr).map((t) => t.kind),
      ['CLASS', 'BOLT_TASK', 'BOLT_TASK', 'BOLT_TASK'],
    );
    assert.deepEqual(referencedTaskIds(expr), [ID, ID2]);
  });
});
