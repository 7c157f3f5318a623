import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { anchoredLiteralPrefix, linearRegex, type LinearRegex } from './linear-regex';

describe('anchoredLiteralPrefix', () => {
  it('answers the literal text after a leading ^, up to the first character that is not one', () => {
    assert.equal(anchoredLiteralPrefix('^node0[0-4].*dc1'), 'node0');
    assert.equal(anchoredLiteralPrefix('^node0012\\d\\d'), 'node0012');
    assert.equal(anchoredLiteralPrefix('^web-01\\.example\\.com$'), 'web-01.example.com');
    assert.equal(anchoredLiteralPrefix('^role::'), 'role::');
  });

  it('leaves out a literal that a repeat makes optional or repeats', () => {
    assert.equal(anchoredLiteralPrefix('^webs?1'), 'web');
    assert.equal(anchoredLiteralPrefix('^web1*'), 'web');
    assert.equal(anchoredLiteralPrefix('^web1+'), 'web');
    assert.equal(anchoredLiteralPrefix('^web1{2}'), 'web');
    assert.equal(anchoredLiteralPrefix('^web\\.+x'), 'web');
  });

  it('answers nothing where the source alone cannot tell', () => {
    assert.equal(anchoredLiteralPrefix('web'), ''); // not anchored
    assert.equal(anchoredLiteralPrefix('^web|db'), ''); // another alternative
    assert.equal(anchoredLiteralPrefix('^web(1|2)'), '');
    assert.equal(anchoredLiteralPrefix('^web[|]'), '');
    assert.equal(anchoredLiteralPrefix('^\\Qa.b\\E'), '');
    assert.equal(anchoredLiteralPrefix('^(?i)web'), '');
    assert.equal(anchoredLiteralPrefix('^web', { caseInsensitive: true }), '');
    assert.equal(anchoredLiteralPrefix('^web', { multiline: true }), '');
    assert.equal(anchoredLiteralPrefix('^\\d'), '');
    assert.equal(anchoredLiteralPrefix('^é1'), ''); // ASCII only
  });

  it('keeps an escaped | a literal and an escaped backslash from escaping the | after it', () => {
    assert.equal(anchoredLiteralPrefix('^a\\|b'), 'a|b');
    assert.equal(anchoredLiteralPrefix('^a\\\\|b'), '');
  });

  it('is a prefix of every string the regex matches, for generated regexes and strings', () => {
    const tokens = [
      'a',
      'b',
      'A',
      '1',
      '\\.',
      '.',
      '*',
      '+',
      '?',
      '{2}',
      '|',
      '(',
      ')',
      '(a|b)',
      '[ab]',
      '[|]',
      '\\\\',
      '\\|',
      '\\Q',
      '\\E',
      '\\d',
      '$',
      '^',
      '(?i)',
      '-',
      ':',
      ' ',
    ];
    const alphabet = ['a', 'b', 'A', '1', '.', '\\', '|', '-', ':', ' ', '\n'];
    let state = 7;
    const random = (n: number): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return (state >>> 8) % n;
    };
    const strings = Array.from({ length: 400 }, () => Array.from({ length: random(8) }, () => alphabet[random(alphabet.length)]).join(''));
    let withPrefix = 0;
    let matchedWithPrefix = 0;
    for (let n = 0; n < 3000; n++) {
      const source = '^' + Array.from({ length: 1 + random(6) }, () => tokens[random(tokens.length)]).join('');
      let re: LinearRegex;
      try {
        re = linearRegex(source);
      } catch {
        continue;
      }
      const prefix = anchoredLiteralPrefix(source);
      if (prefix !== '') withPrefix++;
      // Strings made to start with the prefix too, so that matches are not only the empty prefix's.
      for (const s of [...strings, ...strings.slice(0, 50).map((s) => prefix + s)]) {
        if (!re.test(s)) continue;
        if (!s.startsWith(prefix)) assert.fail(`/${source}/ matches ${JSON.stringify(s)}, which does not start with ${JSON.stringify(prefix)}`);
        if (prefix !== '') matchedWithPrefix++;
      }
    }
    // What the check covered: regexes with a prefix, and strings they matched.
    assert.ok(withPrefix > 300, `only ${withPrefix} generated regexes had a prefix`);
    assert.ok(matchedWithPrefix > 1000, `only ${matchedWithPrefix} matches of regexes with a prefix`);
  });
});
