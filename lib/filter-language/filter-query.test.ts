import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { Filter, FactOperator } from '../../gen/baton/v1/filter';
import { InvalidArgumentError } from '../errors';
import { compileFilter } from './filter-query';

/** The InvalidArgumentError compileFilter throws for `filter`. */
function refusal(filter: Partial<Filter>): InvalidArgumentError {
  try {
    compileFilter(Filter.fromPartial(filter));
  } catch (err) {
    assert.ok(err instanceof InvalidArgumentError, String(err));
    return err;
  }
  assert.fail(`${JSON.stringify(filter)} compiled`);
}

describe('compileFilter refusals', () => {
  it('name each field once: in the message before its problem, and beside (never inside) its description', () => {
    const err = refusal({
      compound: ['role=web and ('],
      identities: [''],
      facts: [{ fact: ' ', operator: FactOperator.FACT_OPERATOR_UNSPECIFIED, value: 'x' }],
    });
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.equal(err.reason, 'INVALID_FILTER');
    assert.deepEqual(err.violations, [
      {
        field: 'filter.compound[0]',
        description: 'expected a class, a fact comparison, (, not, fact(), with(), identity(), agent() or bolt_task() at column 15 of "role=web and ("',
      },
      { field: 'filter.identities[0]', description: 'empty; expected a value or a /regex/' },
      { field: 'filter.facts[0].fact', description: 'empty; expected a dotted fact path such as os.family' },
      { field: 'filter.facts[0].operator', description: 'not set; expected one of ==, !=, =~, <, <=, >, >=' },
    ]);
    assert.equal(err.message, err.violations.map((v) => `${v.field}: ${v.description}`).join('; '));
  });

  it('name the field under the prefix given', () => {
    const err = refusal({ facts: [{ fact: 'os', operator: FactOperator.FACT_OPERATOR_MATCHES, value: '/a(?=b)/' }] });
    assert.equal(err.violations[0].field, 'filter.facts[0].value');
    assert.equal(
      err.message,
      'filter.facts[0].value: /a(?=b)/ uses a lookahead ((?= or (?!), which filters do not support (RE2 syntax, matched in linear time)',
    );
    let under: unknown;
    try {
      compileFilter(Filter.fromPartial({ compound: [')'] }), 'run.filter');
    } catch (err2) {
      under = err2;
    }
    assert.ok(under instanceof InvalidArgumentError);
    assert.match(under.message, /^run\.filter\.compound\[0\]: expected /);
  });

  it('stop at the nesting limit without reading the rest of the expression', () => {
    // What follows the 65th parenthesis is never tokenized: its unclosed quote would be the first problem otherwise.
    const deep = `${'('.repeat(30_000)}role='web${')'.repeat(30_000)}`;
    assert.equal(
      refusal({ compound: [deep] }).violations[0].description,
      `expected at most 64 nested parentheses and negations at column 65 of ${JSON.stringify('('.repeat(160))}…`,
    );
  });
});
