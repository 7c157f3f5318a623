import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { asciiDfa, PackedTexts } from './ascii-dfa';
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

/** The texts of `packed` from `from` to `to` that `re.testPacked` matches (all of them, when it has none). */
function packedMatches(re: LinearRegex, packed: PackedTexts, from: number, to: number): number[] {
  assert.ok(re.testPacked, 'no testPacked');
  const found: number[] = [];
  re.testPacked(packed, from, to, (k) => found.push(k));
  return found;
}

describe('linearRegex on ASCII text (the automaton of ascii-dfa.ts)', () => {
  // re2js itself, the reference: every answer of linearRegex must be its answer.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { RE2JS } = require('re2js') as typeof import('re2js');

  /**
   * Asserts that `re.testPacked` answers as `reference` over `texts` packed (appended in two
   * parts, as a fleet grows), over them all and over a range starting inside; answers the
   * matches over them all.
   */
  function assertPackedAnswers(name: string, re: LinearRegex, reference: { test(s: string): boolean }, texts: string[], packed: PackedTexts): number {
    const expected = texts.flatMap((s, k) => (reference.test(s) ? [k] : []));
    const all = re.testPacked ? packedMatches(re, packed, 0, texts.length) : expected;
    if (all.join() !== expected.join()) {
      const wrong = texts.findIndex((_, k) => all.includes(k) !== expected.includes(k));
      assert.fail(`${name} in one pass on ${JSON.stringify(texts[wrong])}: RE2 answers ${expected.includes(wrong)}`);
    }
    const from = texts.length >> 1;
    if (re.testPacked)
      assert.deepEqual(
        packedMatches(re, packed, from, texts.length),
        expected.filter((k) => k >= from),
        `${name} from text ${from}`,
      );
    return expected.length;
  }

  it('answers as RE2 for generated regexes and strings, case-sensitive or not', () => {
    const tokens = [
      'a',
      'b',
      'A',
      'k',
      '1',
      '-',
      '_',
      '.',
      '\\.',
      '\\-',
      '\\n',
      '[ab]',
      '[a-c]',
      '[-a]',
      '[a-]',
      '[^a]',
      '[^.\\n]',
      '[\\d.]',
      '[^\\w]',
      '[K-k]',
      '\\d',
      '\\w',
      '\\s',
      '\\D',
      '\\W',
      '\\S',
      '*',
      '+',
      '?',
      '*?',
      '+?',
      '{2}',
      '{1,3}',
      '{2,}',
      '{0}',
      '(',
      '(?:',
      ')',
      '()',
      '(a|b)',
      '|',
      '^',
      '$',
      // Outside the automaton's grammar: re2js answers alone, which the comparison covers too.
      '(?i)',
      '\\b',
      '[[:alpha:]]',
      'é',
      '{',
    ];
    const alphabet = ['a', 'b', 'A', 'B', 'k', 'K', '1', '9', '-', '.', '_', 'x', '\n', ' ', '\t', '\v', 'é', '\u212a'];
    let state = 11;
    const random = (n: number): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return (state >>> 8) % n;
    };
    const strings = ['', ...Array.from({ length: 300 }, () => Array.from({ length: random(10) }, () => alphabet[random(alphabet.length)]).join(''))];
    // Packed in two parts, as a fleet's identities are, with an empty text at the end too.
    const texts = [...strings, ''];
    const packed = PackedTexts.empty().append(texts.slice(0, 100)).append(texts.slice(100));
    let packedRegexes = 0;
    let compiled = 0;
    let withAutomaton = 0;
    let matched = 0;
    for (let n = 0; n < 4000; n++) {
      const source = Array.from({ length: 1 + random(7) }, () => tokens[random(tokens.length)]).join('');
      const caseInsensitive = random(3) === 0;
      let reference: { test(s: string): boolean };
      try {
        reference = RE2JS.compile(source, caseInsensitive ? RE2JS.CASE_INSENSITIVE : 0);
      } catch {
        continue;
      }
      compiled++;
      if (asciiDfa(source, caseInsensitive)) withAutomaton++;
      const re = linearRegex(source, { caseInsensitive, automaton: true });
      for (const s of strings) {
        const expected = reference.test(s);
        if (re.test(s) !== expected) assert.fail(`/${source}/${caseInsensitive ? 'i' : ''} on ${JSON.stringify(s)}: RE2 answers ${expected}`);
        if (expected) matched++;
      }
      if (re.testPacked) packedRegexes++;
      assertPackedAnswers(`/${source}/${caseInsensitive ? 'i' : ''}`, re, reference, texts, packed);
    }
    // What the comparison covered: regexes the automaton ran, and matches as well as misses.
    assert.ok(withAutomaton > 1000, `only ${withAutomaton} of ${compiled} generated regexes had an automaton`);
    assert.equal(packedRegexes, withAutomaton, 'every regex with an automaton tests packed texts');
    assert.ok(matched > 50_000, `only ${matched} matches`);
  });

  it('answers as RE2 for identities and regexes shaped like discovery filters', () => {
    const sources = [
      '^node0[0-4].*dc1',
      '^node0012\\d\\d',
      '\\.dc[12]\\.',
      'dc1',
      '^node\\d+\\.dc3\\.example\\.com$',
      '^(web|db)-\\d{2,3}\\.',
      '(?:prod|stag)[a-z]*-0?[1-9]$',
      '^[a-z]+[0-9]{4,}',
      'EXAMPLE',
      '^$',
      '.',
    ];
    const identities = Array.from({ length: 2000 }, (_, i) =>
      i % 3 === 0 ? `node${String(i * 37).padStart(6, '0')}.dc${i % 4}.example.com` : `${['web', 'db', 'prod', 'staging'][i % 4]}-${i % 1000}.Example.COM`,
    );
    const packed = PackedTexts.empty().append(identities);
    for (const source of sources) {
      assert.ok(asciiDfa(source), `/${source}/ has no automaton`);
      for (const caseInsensitive of [false, true]) {
        const reference = RE2JS.compile(source, caseInsensitive ? RE2JS.CASE_INSENSITIVE : 0);
        const re = linearRegex(source, { caseInsensitive, automaton: true });
        for (const s of identities) assert.equal(re.test(s), reference.test(s), `/${source}/${caseInsensitive ? 'i' : ''} on ${s}`);
        assertPackedAnswers(`/${source}/${caseInsensitive ? 'i' : ''}`, re, reference, identities, packed);
      }
    }
  });

  it('finishes pathological regexes over many long identities quickly', () => {
    // Each regex here makes a backtracking engine take exponential (or high polynomial) time on
    // an identity it does not match (none has a `!` or a `=`, and none ends in `x` or `y`).
    const identities = Array.from({ length: 20_000 }, (_, i) => `${'ab'.repeat(100)}.node${String(i).padStart(6, '0')}-${'b1'.repeat(20)}`);
    const packed = PackedTexts.empty().append(identities);
    for (const source of ['^(a|a)*$', '^(.*)*[xy]$', '(.*.*.*.*)*[!=]', '^([\\w.-]|[\\w.-])*[!=]$', '^([ab]+)+$', '^(a|ab|b)*[!=]$']) {
      const re = linearRegex(source, { automaton: true });
      const t0 = process.hrtime.bigint();
      let found = 0;
      for (const s of identities) if (re.test(s)) found++;
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      assert.equal(found, 0, source);
      // A backtracking engine would not finish the first identity in a year; linear time over
      // these 5 million characters is well under a second even on a loaded machine.
      assert.ok(ms < 3000, `/${source}/ over ${identities.length} identities took ${ms.toFixed(0)} ms`);
      // The same in one pass over them packed.
      const t1 = process.hrtime.bigint();
      assert.deepEqual(packedMatches(re, packed, 0, identities.length), [], source);
      const packedMs = Number(process.hrtime.bigint() - t1) / 1e6;
      assert.ok(packedMs < 3000, `/${source}/ over ${identities.length} packed identities took ${packedMs.toFixed(0)} ms`);
    }
  });

  it('is built only when asked for: other callers match on re2js alone', () => {
    assert.ok(linearRegex('^node0[0-4].*dc1') instanceof RE2JS);
    assert.ok(!(linearRegex('^node0[0-4].*dc1', { automaton: true }) instanceof RE2JS));
    // A regex outside the automaton's grammar is re2js's either way.
    assert.ok(linearRegex('(?i)node', { automaton: true }) instanceof RE2JS);
  });

  it('answers as RE2 when the automaton has more states than its table holds', () => {
    // Over random runs of a and b, this regex's automaton has a state per pattern of the last
    // 17 characters, far more than the table holds: it is emptied again and again.
    let state = 5;
    const ab = () => Array.from({ length: 200 }, () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) & 0x10000 ? 'a' : 'b')).join('');
    const identities = Array.from({ length: 1000 }, (_, i) => `${ab()}.node${i}`);
    const packed = PackedTexts.empty().append(identities);
    for (const source of ['[ab]*a[ab]{16}\\.', '(?:a|b)*b(?:a|b){15}\\.node1']) {
      const dfa = asciiDfa(source)!;
      const reference = RE2JS.compile(source);
      let matched = 0;
      for (const s of identities) {
        const expected = reference.test(s);
        assert.equal(dfa.test(s), expected, `/${source}/ on ${s}`);
        if (expected) matched++;
      }
      assert.ok(matched > 10 && matched < identities.length, `/${source}/ matched ${matched}`);
      assert.ok((dfa as unknown as { emptied: number }).emptied > 0, `/${source}/: the table was never emptied`);
      // The same in one pass over them packed, with an automaton of its own (emptied during it).
      const fresh = asciiDfa(source)!;
      const found: number[] = [];
      fresh.testPacked(
        packed,
        0,
        identities.length,
        (k) => found.push(k),
        () => assert.fail('an ASCII identity undecided'),
      );
      assert.deepEqual(
        found,
        identities.flatMap((s, k) => (reference.test(s) ? [k] : [])),
        `/${source}/ in one pass`,
      );
      assert.ok((fresh as unknown as { emptied: number }).emptied > 0, `/${source}/: the table was never emptied in one pass`);
    }
  });
});
