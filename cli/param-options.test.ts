import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { Parameter, Task } from '../gen/baton/v1/task';
import { parseFactOption as parseFactFilter } from './filter-options';
import { FactOperator } from '../gen/baton/v1/filter';
import { addParamOptions, inputFromFlags, paramFlags } from './param-options';

const param = (name: string, type: string) => Parameter.fromPartial({ name, type });

/** Parses `argv` with the flags of a task having `parameters`; returns name → JSON value. */
function parse(parameters: Parameter[], argv: string[]): Record<string, unknown> {
  const task = Task.fromPartial({ name: 'demo::t', environment: 'production', parameters, parametersDeclared: true });
  const flags = paramFlags(parameters, new Set(['timeout', 'input']));
  const command = new Command('run').exitOverride().configureOutput({ writeErr: () => undefined });
  addParamOptions(command, flags);
  command.parse(argv, { from: 'user' });
  const texts = inputFromFlags(task, flags, command.opts());
  return Object.fromEntries([...texts].map(([k, v]) => [k, JSON.parse(v) as unknown]));
}

describe('task parameter flags', () => {
  it('coerces values by the Puppet type (Bolt rule): JSON when it fits the type, else the string', () => {
    const input = parse(
      [
        param('count', 'Optional[Integer[1,10]]'),
        param('force', 'Boolean'),
        param('opts', 'Hash[String, Data]'),
        param('hosts', 'Array[String]'),
        param('mode', 'Enum[a, b]'),
      ],
      ['--count', '3', '--no-force', '--opts', '{"a":[1]}', '--hosts', 'x', '--hosts', 'y', '--mode', 'a'],
    );
    assert.deepEqual(input, { count: 3, force: false, opts: { a: [1] }, hosts: ['x', 'y'], mode: 'a' });
  });

  it('leaves out parameters whose flag was not given', () => {
    assert.deepEqual(parse([param('message', 'String'), param('count', 'Integer')], ['--message', 'hi']), { message: 'hi' });
  });

  it('renames a parameter that clashes with a run option to --param-<name>', () => {
    assert.deepEqual(parse([param('timeout', 'Integer')], ['--param-timeout', '30']), { timeout: 30 });
  });

  it('keeps a value that does not fit as a string, for the scheduler to reject in Puppet words', () => {
    assert.deepEqual(parse([param('count', 'Integer')], ['--count', 'many']), { count: 'many' });
    assert.deepEqual(parse([param('name', 'String')], ['--name', '42']), { name: '42' });
    assert.deepEqual(parse([param('ports', 'Array[Integer]')], ['--ports', '80', '--ports', '443']), { ports: [80, 443] });
    assert.deepEqual(parse([param('ports', 'Array[Integer]')], ['--ports', '[80,443]']), { ports: [80, 443] });
  });
});

describe('parseFactFilter', () => {
  it('reads Choria fact filters, regexes included', () => {
    assert.deepEqual(parseFactFilter('os.family=Debian'), { fact: 'os.family', operator: FactOperator.FACT_OPERATOR_EQUAL, value: 'Debian' });
    assert.deepEqual(parseFactFilter('memory>=4096'), { fact: 'memory', operator: FactOperator.FACT_OPERATOR_GREATER_EQUAL, value: '4096' });
    assert.deepEqual(parseFactFilter('role=/^we/'), { fact: 'role', operator: FactOperator.FACT_OPERATOR_MATCHES, value: '^we' });
    assert.deepEqual(parseFactFilter('role!=db'), { fact: 'role', operator: FactOperator.FACT_OPERATOR_NOT_EQUAL, value: 'db' });
  });

  it('rejects text without an operator', () => {
    assert.throws(() => parseFactFilter('role'), /is not a fact filter; expected FACT=VALUE/);
  });
});
