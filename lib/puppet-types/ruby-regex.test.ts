import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { translateRubyRegex, RubyRegexError } from './ruby-regex';

function matches(source: string, s: string): boolean {
  return translateRubyRegex(source).regex.test(s);
}

describe('translateRubyRegex', () => {
  it('treats ^ and $ as line anchors on \\n only, as Ruby does', () => {
    assert.equal(matches('^\\d+$', 'abc\n123'), true);
    assert.equal(matches('^\\d+$', 'abc\r123'), false);
    assert.equal(matches('^[^|&]*$', 'a|b'), false);
    assert.equal(matches('^[^|&]*$', 'ab'), true);
  });

  it('translates \\A, \\z and \\Z (end or before a final newline)', () => {
    assert.equal(matches('\\A[a-z0-9_]+\\Z', 'abc\n'), true);
    assert.equal(matches('\\A[a-z0-9_]+\\z', 'abc\n'), false);
    assert.equal(matches('\\A[a-z0-9_]+\\Z', 'abc\n\n'), false);
    assert.equal(matches('\\Aabc', 'xabc'), false);
  });

  it('searches unanchored, and translates \\h, \\s, POSIX brackets, {,n}, dot and a leading (?i)/(?m)', () => {
    assert.equal(matches('\\w+=\\w+', '  a=b  '), true);
    assert.equal(matches('\\A\\h+\\z', 'DeadBeef'), true);
    assert.equal(matches('\\A\\h+\\z', 'xyz'), false);
    assert.equal(matches('\\A\\s\\z', '\u00a0'), false);
    assert.equal(matches('\\A[[:alpha:]]+\\z', 'abcXYZ'), true);
    assert.equal(matches('\\A[[:digit:]]+\\z', 'ab'), false);
    assert.equal(matches('\\Aa{,2}\\z', 'aa'), true);
    assert.equal(matches('\\Aa{,2}\\z', 'aaa'), false);
    assert.equal(matches('a.b', 'a\nb'), false);
    assert.equal(matches('a.b', 'a\rb'), true);
    assert.equal(matches('(?m)a.b', 'a\nb'), true);
    assert.equal(matches('(?i)\\Aabc\\z', 'ABC'), true);
    assert.equal(matches('^\\d+(%(?:vg|pvs|free|origin)?)?$', '50%free'), true);
    assert.equal(matches('[]a]', ']'), true);
    assert.equal(matches('\\A(?<n>a)b\\z', 'ab'), true);
    assert.equal(matches('\\A\\u00e9\\z', '\u00e9'), true);
  });

  it('runs in linear time: a regex that makes a backtracking engine take seconds answers at once', () => {
    const re = translateRubyRegex('^(a|a)*$').regex;
    const started = process.hrtime.bigint();
    assert.equal(re.test(`${'a'.repeat(40)}b`), false);
    assert.equal(re.test('a'.repeat(10_000)), true);
    assert.ok(process.hrtime.bigint() - started < 1_000_000_000n, 'within 1 s (a backtracking engine needs hours for 40 characters)');
  });

  it('refuses constructs without a linear-time equivalent instead of mis-translating them', () => {
    for (const src of [
      '(?>a)',
      'a++',
      'a*+',
      'a{2}+',
      'x(?i)y',
      '(?i:a)',
      '(?x) a',
      '(?#c)',
      '\\Ga',
      'a\\K',
      '\\R',
      '\\X',
      '\\p{Alpha}',
      '\\u{41}',
      '[a[b]]',
      '[a&&b]',
      '[[:^alpha:]]',
      '\\g<1>',
      '(?(1)a|b)',
      'a\\Zb',
      'a{1001}',
    ]) {
      assert.throws(() => translateRubyRegex(src), RubyRegexError, src);
    }
  });

  it('names what is not supported: backreferences and lookaround', () => {
    for (const [src, says] of [
      ['(a)\\1', 'backreference'],
      ['(?<n>a)\\k<n>', 'named backreference'],
      ['a(?=b)', 'lookahead'],
      ['a(?!b)', 'lookahead'],
      ['(?<=a)b', 'lookbehind'],
      ['(?<!a)b', 'lookbehind'],
    ] as const) {
      assert.throws(
        () => translateRubyRegex(src),
        (err: unknown) => err instanceof RubyRegexError && err.message.includes(says) && !err.message.includes('\n'),
        src,
      );
    }
  });
});
