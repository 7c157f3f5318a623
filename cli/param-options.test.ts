import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { Parameter } from '../gen/baton/v1/task';
import { CliError } from './cli-error';
import { parseFactFilter } from './commands/tasks-run';
import { FactOperator } from '../gen/baton/v1/filter';
import { addParamOptions, inputFromFlags, paramFlags } from './param-options';

const param = (name: string, type: string) => Parameter.fromPartial({ name, type });

function parse(parameters: Parameter[], argv: string[]): Record<string, unknown> {
  const flags = paramFlags(parameters, new Set(['timeout', 'input']));
  const command = new Command('run').exitOverride().configureOutput({ writeErr: () => undefined });
  addParamOptions(command, flags);
  command.parse(argv, { from: 'user' });
  return inputFromFlags(flags, command.opts());
}

describe('task parameter flags', () => {
  it('types values from the Puppet type like mco: numbers, booleans, JSON, repeated arrays, strings', () => {
    const input = parse(
      [param('count', 'Optional[Integer[1,10]]'), param('force', 'Boolean'), param('opts', 'Hash[String, Data]'), param('hosts', 'Array[String]'), param('mode', 'Enum[a, b]')],
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

  it('rejects a value that does not fit the type in one line naming the flag', () => {
    assert.throws(() => parse([param('count', 'Integer')], ['--count', 'many']), (err: Error) => err instanceof CliError && err.message === "--count expects a number (Integer), got 'many'");
    assert.throws(() => parse([param('opts', 'Hash')], ['--opts', '{nope']), (err: Error) => err instanceof CliError && /^--opts expects JSON \(Hash\)/.test(err.message));
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
