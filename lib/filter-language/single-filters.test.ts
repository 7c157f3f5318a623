import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FactOperator } from '../../gen/baton/v1/filter';
import { FilterSyntaxError } from './filter-syntax-error';
import { evaluate } from './evaluate';
import { matchEntryTerm, isRegexEntry, parseFactFilter, parseMatchEntry, parseWithFilter } from './single-filters';

const O = FactOperator;

describe('parseFactFilter (-F)', () => {
  it('reads every operator and the Choria aliases', () => {
    const cases: [string, FactOperator][] = [
      ['==', O.FACT_OPERATOR_EQUAL],
      ['=', O.FACT_OPERATOR_EQUAL],
      ['!=', O.FACT_OPERATOR_NOT_EQUAL],
      ['=~', O.FACT_OPERATOR_MATCHES],
      ['<', O.FACT_OPERATOR_LESS],
      ['<=', O.FACT_OPERATOR_LESS_EQUAL],
      ['=<', O.FACT_OPERATOR_LESS_EQUAL],
      ['>', O.FACT_OPERATOR_GREATER],
      ['>=', O.FACT_OPERATOR_GREATER_EQUAL],
      ['=>', O.FACT_OPERATOR_GREATER_EQUAL],
    ];
    for (const [written, operator] of cases) assert.deepEqual(parseFactFilter(`memory${written}4096`), { fact: 'memory', operator, value: '4096' }, written);
  });

  it('trims blanks, keeps dotted paths, and turns /regex/ values into matches', () => {
    assert.deepEqual(parseFactFilter(' os.family = Debian '), { fact: 'os.family', operator: O.FACT_OPERATOR_EQUAL, value: 'Debian' });
    assert.deepEqual(parseFactFilter('os.family=/^deb/'), { fact: 'os.family', operator: O.FACT_OPERATOR_MATCHES, value: '^deb' });
    assert.deepEqual(parseFactFilter('name=~/^web/'), { fact: 'name', operator: O.FACT_OPERATOR_MATCHES, value: '^web' });
    assert.deepEqual(parseFactFilter('name=~^web'), { fact: 'name', operator: O.FACT_OPERATOR_MATCHES, value: '^web' });
  });

  it('splits at the left-most operator so values may contain operator characters', () => {
    assert.deepEqual(parseFactFilter('name=~/a=b/'), { fact: 'name', operator: O.FACT_OPERATOR_MATCHES, value: 'a=b' });
    assert.deepEqual(parseFactFilter('url==http://h?a=b'), { fact: 'url', operator: O.FACT_OPERATOR_EQUAL, value: 'http://h?a=b' });
  });

  it('rejects what is not a fact filter, in one line with the column', () => {
    const bad: [string, number, string][] = [
      ['memory', 7, 'an operator'],
      ['=x', 1, 'a fact name'],
      ['a=', 3, "a value after '='"],
      ['a</x/', 3, 'a /regex/ goes with'],
      ['a=~(', 4, 'a valid regular expression'],
      ['a=/(/', 4, 'a valid regular expression'],
      ['a!=/x/', 2, '== or =~ before a /regex/'],
    ];
    for (const [text, column, expected] of bad) {
      assert.throws(
        () => parseFactFilter(text),
        (err: unknown) => err instanceof FilterSyntaxError && err.column === column && err.expected.includes(expected) && err.message.startsWith('expected '),
        text,
      );
    }
  });
});

describe('parseWithFilter (-W)', () => {
  it('reads each blank-separated item as a fact filter, else a class, else a class regex', () => {
    assert.deepEqual(parseWithFilter('apache  os.family=Debian /^role::/ memory>=4096'), [
      { kind: 'CLASS', name: 'apache' },
      { kind: 'FACT', path: 'os.family', operator: '==', value: 'Debian' },
      { kind: 'CLASS_REGEX', pattern: '^role::' },
      { kind: 'FACT', path: 'memory', operator: '>=', value: '4096' },
    ]);
  });

  it('rejects an empty list and an invalid class regex', () => {
    assert.throws(() => parseWithFilter('  '), FilterSyntaxError);
    assert.throws(() => parseWithFilter('/(/'), FilterSyntaxError);
  });
});

describe('-I / -C / -A entries', () => {
  it('detects /regex/ entries', () => {
    assert.ok(isRegexEntry('/x/') && isRegexEntry('//') && !isRegexEntry('/') && !isRegexEntry('x/') && !isRegexEntry('/x'));
    assert.deepEqual(parseMatchEntry('/^web\\d/'), { kind: 'REGEX', pattern: '^web\\d' });
    assert.deepEqual(parseMatchEntry('web1'), { kind: 'EXACT', value: 'web1' });
    assert.throws(() => parseMatchEntry(''), FilterSyntaxError);
    assert.throws(() => parseMatchEntry('/[/'), FilterSyntaxError);
  });

  it('matches identities and agents case-sensitively and classes case-insensitively', () => {
    const node = (identity: string, classes: string[] = [], agents: string[] = []) => ({ identity, facts: {}, classes, agents });
    const holds = (entry: string, of: 'IDENTITY' | 'CLASS' | 'AGENT', n: ReturnType<typeof node>) => evaluate(matchEntryTerm(entry, of), n);
    assert.ok(holds('web1', 'IDENTITY', node('web1')) && !holds('web1', 'IDENTITY', node('WEB1')));
    assert.ok(holds('/^web/', 'IDENTITY', node('web1')) && !holds('/^web/', 'IDENTITY', node('WEB1')));
    assert.ok(holds('Apache', 'CLASS', node('x', ['apache'])));
    assert.ok(holds('/^APACHE/', 'CLASS', node('x', ['apache::mod'])));
    assert.ok(holds('/^rpc/', 'AGENT', node('x', [], ['rpcutil'])) && !holds('/^RPC/', 'AGENT', node('x', [], ['rpcutil'])));
    assert.deepEqual(matchEntryTerm('/a\\/b/', 'AGENT'), { kind: 'AGENT_REGEX', pattern: 'a/b' }, 'a slash escaped in an entry reads as in -S');
  });

  it('refuses a regex RE2 cannot run in linear time, saying what is not supported', () => {
    for (const [entry, says] of [
      ['/(a)\\1/', 'backreference'],
      ['/a(?=b)/', 'lookahead'],
      ['/(?<=a)b/', 'lookbehind'],
      ['/(?>a)/', 'atomic group'],
    ] as const) {
      assert.throws(
        () => parseMatchEntry(entry),
        (err: unknown) => err instanceof FilterSyntaxError && err.expected.includes(says) && err.expected.includes('RE2 syntax') && !err.message.includes('\n'),
        entry,
      );
    }
  });
});
