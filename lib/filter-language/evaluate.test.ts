import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FactOperator } from '../../gen/baton/v1/filter';
import { evaluate, type BoltTaskLookup, type BoltTaskResultFields, type NodeView } from './evaluate';
import { compareFact } from './fact-compare';
import { factAt, readNumber, scalarFacts } from './fact-values';
import { BOLT_TASK_FIELDS } from './filter-expr';
import { parseCompound } from './filter-parser';

const ID = 'ae561842dc7d5a9dae94f766dfb3d4c8';

const web1: NodeView = {
  identity: 'web1.example.net',
  facts: { os: { family: 'Debian', release: { major: '12' } }, memory: 8192, virtual: true, 'dotted.name': 'literal', disks: [{ size: 100 }], nothing: null },
  classes: ['Apache', 'apache::mod::ssl', 'role::web'],
  agents: ['bolt_tasks', 'rpcutil'],
};
const db1: NodeView = { identity: 'db1.example.net', facts: { os: { family: 'RedHat' }, memory: 4096 }, classes: ['role::db'], agents: ['rpcutil'] };

const failed: BoltTaskResultFields = {
  task: 'acme::recover',
  caller: 'choria=alice.mcollective',
  exitcode: 3,
  completed: true,
  runtime: 1.25,
  start_time: 1_764_290_000,
  stdout: '{"ok":false}',
  stderr: 'disk full',
  wrapper_spawned: true,
  wrapper_error: '',
  wrapper_pid: 4242,
};
const results: BoltTaskLookup = (taskId, identity) => (taskId === ID && identity === web1.identity ? failed : undefined);

const matches = (text: string, node: NodeView = web1) => evaluate(parseCompound(text), node, results);

describe('compareFact', () => {
  it('compares numbers numerically, also when either side is numeric text', () => {
    assert.ok(compareFact(8192, '>', '4096'));
    assert.ok(compareFact('10', '>', '9'));
    assert.ok(compareFact(1, '==', '1.0'));
    assert.ok(compareFact('2e3', '>=', '2000'));
    assert.ok(!compareFact(10, '<', '9'));
    assert.ok(compareFact(10, '<=', '10') && compareFact(10, '>=', '10') && compareFact(10, '!=', '11'));
  });

  it('compares text case-insensitively, also when ordering it, and never orders booleans or a number against text', () => {
    assert.ok(compareFact('Debian', '==', 'debian'));
    assert.ok(compareFact('Debian', '!=', 'RedHat'));
    assert.ok(!compareFact('Debian', '!=', 'DEBIAN'));
    assert.ok(compareFact(true, '==', 'TRUE') && compareFact(false, '!=', 'true'));
    assert.ok(compareFact('production', '>=', 'p') && compareFact('Production', '>', 'P') && !compareFact('production', '<', 'p'));
    assert.ok(compareFact('b', '>', 'A') && compareFact('B', '>', 'a'), 'case does not order');
    assert.ok(compareFact('abc', '<=', 'ABC') && compareFact('abc', '>=', 'ABC'));
    assert.ok(compareFact('\u{1f600}', '>', '\uffff'), 'by code point, not UTF-16 unit');
    for (const op of ['<', '<=', '>', '>='] as const) {
      assert.ok(!compareFact(true, op, 'false'), `boolean ${op}`);
      assert.ok(!compareFact(5, op, 'five') && !compareFact('5', op, 'five'), `number against text ${op}`);
      assert.ok(!compareFact('five', op, '5'), `text against a number ${op}`);
    }
  });

  it('reads numbers one way: finite, from numbers or numeric text, so 1e999 is text on both sides', () => {
    assert.equal(readNumber('1e999'), undefined);
    assert.equal(readNumber(' 1.5e3 '), 1500);
    assert.equal(readNumber('0x10'), undefined);
    assert.equal(readNumber(Number.POSITIVE_INFINITY), undefined);
    assert.ok(compareFact('1E999', '==', '1e999'), 'equal as text');
    assert.ok(!compareFact(5, '<', '1e999'), 'not a number, so no numeric order');
  });

  it('matches regexes case-insensitively against the text of the value', () => {
    assert.ok(compareFact('Debian', '=~', '^deb'));
    assert.ok(compareFact(8192, '=~', '^81'));
    assert.ok(compareFact('Debian', '!~', 'hat'));
    assert.ok(!compareFact('Debian', '!~', 'DEB'));
    assert.ok(!compareFact('x', '=~', '('), 'an invalid regex is false, not a throw');
  });

  it('never matches a missing value, not even with != or !~', () => {
    for (const op of ['==', '!=', '<', '<=', '>', '>=', '=~', '!~'] as const) {
      assert.ok(!compareFact(undefined, op, 'x'), op);
      assert.ok(!compareFact(null, op, '1'), op);
    }
  });

  it('accepts the proto FactOperator and rejects an unset one', () => {
    assert.ok(compareFact(5, FactOperator.FACT_OPERATOR_GREATER_EQUAL, '5'));
    assert.ok(compareFact('web', FactOperator.FACT_OPERATOR_MATCHES, 'W'));
    assert.ok(!compareFact('web', FactOperator.FACT_OPERATOR_UNSPECIFIED, 'web'));
  });

  it('matches objects and arrays by a regex on their JSON text and by no other comparison', () => {
    assert.ok(compareFact(['a', 'b'], '=~', '"b"'));
    for (const op of ['==', '!=', '<', '<=', '>', '>='] as const) assert.ok(!compareFact({ a: 1 }, op, '{"A":1}'), op);
  });
});

describe('factAt', () => {
  it('follows dotted paths into objects and arrays, preferring a literally dotted name', () => {
    assert.equal(factAt(web1.facts, 'os.release.major'), '12');
    assert.equal(factAt(web1.facts, 'disks.0.size'), 100);
    assert.equal(factAt(web1.facts, 'dotted.name'), 'literal');
    assert.equal(factAt(web1.facts, 'os.nope.deeper'), undefined);
    assert.equal(factAt(web1.facts, 'memory.x'), undefined);
    assert.equal(factAt(web1.facts, 'constructor'), undefined, 'no prototype properties');
    assert.equal(factAt(web1.facts, 'disks.length'), undefined, 'array indices only');
  });

  it('lists for the index exactly the scalar values factAt resolves', () => {
    const facts = { a: { b: 1, 'c.d': 2, e: [true, null, { f: 'x' }] }, 'a.b': 'shadow', 'g.h': { i: 3 }, j: null, k: {} };
    const listed = scalarFacts(facts);
    assert.deepEqual(listed, [
      ['a.e.0', true],
      ['a.e.2.f', 'x'],
      ['a.b', 'shadow'],
    ]);
    for (const [path, value] of listed) assert.equal(factAt(facts, path), value, path);
    assert.equal(factAt(facts, 'a.c.d'), undefined, 'a nested key with a dot is not reachable, so not listed');
    assert.equal(factAt(facts, 'g.h.i'), undefined);
  });
});

describe('evaluate', () => {
  it('matches classes exactly and case-insensitively, and class regexes case-insensitively', () => {
    assert.ok(matches('apache'));
    assert.ok(matches('ROLE::WEB'));
    assert.ok(!matches('role'));
    assert.ok(matches('/^APACHE::mod/'));
    assert.ok(!matches('/^mod/'));
  });

  it('matches facts through dotted paths and fact()', () => {
    assert.ok(matches('os.family = debian'));
    assert.ok(matches("fact('os.release.major') >= 12"));
    assert.ok(matches('os.release.major > 9'), 'numeric text compares numerically');
    assert.ok(matches('virtual = true'));
    assert.ok(matches('os.family = /^deb/'));
    assert.ok(!matches('os.family != /^deb/'));
    assert.ok(matches('os.family < zzz'), 'text orders');
    assert.ok(!matches('os.family > 5'), 'but not against a number');
    assert.ok(!matches('nothing != 1') && !matches('missing != 1'), 'a missing fact never matches');
    assert.ok(matches('not missing = 1'), 'but its negation does');
  });

  it('applies and, or, not with their precedence', () => {
    assert.ok(matches('role::db or apache and memory > 4096'));
    assert.ok(!matches('(role::db or apache) and memory > 10000'));
    assert.ok(matches('!role::db and not os.family = redhat'));
    assert.ok(matches('role::db', db1) && !matches('role::db and apache', db1));
    assert.ok(matches("with('os.family=RedHat') and with('role::db')", db1));
  });

  it('answers every bolt_task field from the node result', () => {
    const cases: Record<(typeof BOLT_TASK_FIELDS)[number], [string, string]> = {
      known: ['== true', '== false'],
      task: ['= acme::recover', "= 'acme::other'"],
      caller: ['=~ /alice/', '=~ /bob/'],
      exitcode: ['> 0', '== 0'],
      completed: ['= true', '= false'],
      runtime: ['>= 1.25', '> 2'],
      start_time: ['< 1764290001', '< 1764289999'],
      stdout: ['=~ /"ok":false/', '== ""'],
      stderr: ["= 'DISK FULL'", '=~ /memory/'],
      wrapper_spawned: ['== true', '!= true'],
      wrapper_error: ["== ''", '!= ""'],
      wrapper_pid: ['= 4242', '< 100'],
    };
    for (const field of BOLT_TASK_FIELDS) {
      const [yes, no] = cases[field];
      assert.ok(matches(`bolt_task('${ID}').${field} ${yes}`), `${field} ${yes}`);
      assert.ok(!matches(`bolt_task('${ID}').${field} ${no}`), `${field} ${no}`);
    }
  });

  it('matches a node that never ran the task only with known == false (not exitcode > 0, Choria’s 127)', () => {
    assert.ok(matches(`bolt_task('${ID}').known == false`, db1));
    assert.ok(matches(`bolt_task('${ID}').known != true`, db1));
    assert.ok(!matches(`bolt_task('${ID}').known == true`, db1));
    for (const field of BOLT_TASK_FIELDS.filter((f) => f !== 'known')) {
      for (const cmp of ['> 0', '== 0', '!= 0', '== 127', "== ''", '!= x', '=~ /.*/', '!= /x/', '< 1e9', '== false']) {
        assert.ok(!matches(`bolt_task('${ID}').${field} ${cmp}`, db1), `${field} ${cmp}`);
      }
    }
    assert.ok(matches(`not bolt_task('${ID}').exitcode > 0`, db1), 'negating the comparison still selects it');
  });

  it('treats a field missing from a result as never matching', () => {
    const partial: BoltTaskLookup = () => ({ task: 'acme::recover' });
    assert.ok(!evaluate(parseCompound(`bolt_task('${ID}').exitcode != 0`), web1, partial));
    assert.ok(evaluate(parseCompound(`bolt_task('${ID}').known = true`), web1, partial));
  });
});
