import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Task } from '../gen/baton/v1/task';
import { MAX_INPUT_BYTES, coerceTaskParameter, redactInput, taskSignature, validateTaskInput } from './task-input';

const restart = Task.fromPartial({
  name: 'acme::restart',
  parametersDeclared: true,
  parameters: [
    { name: 'action', type: 'Enum[start, stop]', required: true },
    { name: 'count', type: 'Optional[Integer[1]]', required: false },
    { name: 'password', type: 'String[1]', sensitive: true, required: true },
    { name: 'ratio', type: 'Float', required: false, defaultValue: 0.5 },
    { name: 'service', type: 'String', required: true, defaultValue: 'httpd' },
    { name: 'tags', type: 'Optional[Array[String]]', required: false },
    { name: 'weird', type: 'Variant[Numeric, Pattern[/x/]]', required: true },
  ],
});

const undeclared = Task.fromPartial({ name: 'acme::free', parametersDeclared: false });
const noParams = Task.fromPartial({ name: 'acme::none', parametersDeclared: true });

function descriptions(task: Task, json: string): string[] {
  return validateTaskInput(task, json).violations.map((v) => `${v.field}: ${v.description}`);
}

describe('validateTaskInput', () => {
  it('accepts valid input, applies defaults for absent and null parameters, and keeps number lexemes', () => {
    const r = validateTaskInput(restart, '{"action":"stop", "count": 3, "password":"s3cret", "service": null, "weird": 1.50}');
    assert.deepEqual(r.violations, []);
    assert.deepEqual(r.input, { action: 'stop', count: 3, password: 's3cret', service: 'httpd', weird: 1.5, ratio: 0.5 });
    assert.equal(r.inputJson, '{"action":"stop","count":3,"password":"s3cret","service":"httpd","weird":1.50,"ratio":0.5}');
    assert.equal(r.redactedJson, '{"action":"stop","count":3,"password":"Sensitive [value redacted]","service":"httpd","weird":1.50,"ratio":0.5}');
  });

  it('keeps integers beyond 2^53 exactly in the JSON text', () => {
    const r = validateTaskInput(undeclared, '{"id": 123456789012345678901234567890}');
    assert.deepEqual(r.violations, []);
    assert.equal(r.inputJson, '{"id":123456789012345678901234567890}');
  });

  it('treats empty input as an empty object', () => {
    assert.deepEqual(validateTaskInput(noParams, ''), { input: {}, inputJson: '{}', redactedJson: '{}', violations: [] });
  });

  it('rejects input that is not a JSON object', () => {
    assert.deepEqual(descriptions(undeclared, '[1]'), ['input_json: input must be a JSON object, got Array']);
    assert.match(descriptions(undeclared, '{"a":')[0], /^input_json: input must be a JSON object: /);
    assert.deepEqual(descriptions(undeclared, '"x"'), ['input_json: input must be a JSON object, got String']);
  });

  it('rejects input larger than the limit', () => {
    const big = JSON.stringify({ x: 'a'.repeat(MAX_INPUT_BYTES) });
    assert.match(descriptions(undeclared, big)[0], /^input_json: input is \d+ bytes of JSON; at most 102400 are accepted$/);
  });

  it('rejects unknown keys, missing required parameters and metaparameters, naming each', () => {
    assert.deepEqual(descriptions(restart, '{"actoin":"stop","_noop":true,"weird":1}'), [
      "actoin: has no parameter named 'actoin'",
      "_noop: has no parameter named '_noop' (keys starting with '_' are metaparameters set by Baton)",
      "action: expects a value for parameter 'action'",
      "password: expects a value for parameter 'password'",
    ]);
  });

  it('rejects any key for a task that declares an empty parameters object', () => {
    assert.deepEqual(descriptions(noParams, '{"x":1}'), ["x: has no parameter named 'x'"]);
  });

  it('accepts any well-named key for a task without declared parameters, but not metaparameters or bad names', () => {
    assert.deepEqual(descriptions(undeclared, '{"anything":{"deep":[1,2]},"n":1}'), []);
    assert.deepEqual(descriptions(undeclared, '{"_task":"x","Bad-Name":1}'), [
      "_task: has no parameter named '_task' (keys starting with '_' are metaparameters set by Baton)",
      "Bad-Name: has an invalid parameter name 'Bad-Name' (expected ^[a-z][a-z0-9_]*$)",
    ]);
  });

  it('checks base types in Puppet wording, telling Integer from Float by the lexeme', () => {
    const r = descriptions(restart, '{"action":"restart","count":2.0,"password":5,"ratio":1,"service":true,"tags":"a","weird":"xo"}');
    assert.deepEqual(r, [
      "action: parameter 'action' expects a match for Enum['start', 'stop'], got 'restart'",
      "count: parameter 'count' expects a value of type Undef or Integer[1], got Float",
      "password: parameter 'password' expects a String[1] value, got Integer",
      "ratio: parameter 'ratio' expects a Float value, got Integer",
      "service: parameter 'service' expects a String value, got Boolean",
      "tags: parameter 'tags' expects a value of type Undef or Array[String], got String",
    ]);
  });

  it('accepts null for optional parameters and checks Enum case-insensitively when asked', () => {
    const t = Task.fromPartial({
      name: 'acme::e',
      parametersDeclared: true,
      parameters: [
        { name: 'mode', type: "Optional[Enum['On', 'Off', true]]", required: false },
        { name: 'opt', type: 'Optional[Hash]', required: false },
      ],
    });
    assert.deepEqual(descriptions(t, '{"mode":"on","opt":null}'), []);
    assert.deepEqual(descriptions(t, '{"mode":"maybe","opt":[]}'), [
      "mode: parameter 'mode' expects a match for Enum['Off', 'On', true], got 'maybe'",
      "opt: parameter 'opt' expects a value of type Undef or Hash, got Array",
    ]);
  });

  it('checks full types: sizes, ranges, element types, patterns, Struct keys and big integers', () => {
    const t = Task.fromPartial({
      name: 'acme::full',
      environment: 'production',
      parametersDeclared: true,
      parameters: [
        { name: 'port', type: 'Integer[1, 65535]', required: true },
        { name: 'names', type: 'Array[Pattern[/\\A[a-z]+\\z/], 1]', required: true },
        { name: 'opts', type: 'Struct[{depth => Integer, Optional[tag] => String[1]}]', required: true },
        { name: 'big', type: 'Integer[0]', required: true },
      ],
    });
    assert.deepEqual(descriptions(t, '{"port": 65535, "names": ["ab"], "opts": {"depth": 2}, "big": 99999999999999999999999}'), []);
    assert.deepEqual(descriptions(t, '{"port": 0, "names": ["Ab"], "opts": {"depth": 2.0, "tag": ""}, "big": -99999999999999999999999}'), [
      "port: parameter 'port' expects an Integer[1, 65535] value, got Integer[0, 0]",
      "names: parameter 'names' index 0 expects a match for Pattern[/\\A[a-z]+\\z/], got 'Ab'",
      "opts: parameter 'opts' entry 'depth' expects an Integer value, got Float",
      "opts: parameter 'opts' entry 'tag' expects a String[1] value, got String",
      "big: parameter 'big' expects an Integer[0] value, got Integer[-99999999999999999999999, -99999999999999999999999]",
    ]);
  });

  it('refuses to run a task whose parameter type is not valid Puppet, naming the parameter', () => {
    const t = Task.fromPartial({ name: 'lvm::ensure_fs', parametersDeclared: true, parameters: [{ name: 'fs_type', type: 'Optional[Enum[LG,no]]' }] });
    assert.deepEqual(descriptions(t, '{}'), [
      "fs_type: task lvm::ensure_fs cannot be run: parameter 'fs_type' has an invalid type: invalid type 'Optional[Enum[LG,no]]' at position 14: expected identifiers or strings as Enum parameters; 'LG' is capitalised, so Puppet reads it as a type reference (quote it: 'LG')",
    ]);
  });

  it('recompiles a task whose parameters changed and reuses the signature of one that did not', () => {
    const v1 = Task.fromPartial({ name: 'acme::c', environment: 'production', parametersDeclared: true, parameters: [{ name: 'n', type: 'Integer' }] });
    const v2 = Task.fromPartial({ name: 'acme::c', environment: 'production', parametersDeclared: true, parameters: [{ name: 'n', type: 'String' }] });
    assert.equal(taskSignature(v1), taskSignature(Task.fromPartial(v1)));
    assert.notEqual(taskSignature(v1), taskSignature(v2));
    assert.deepEqual(descriptions(v2, '{"n": 1}'), ["n: parameter 'n' expects a String value, got Integer"]);
    assert.notEqual(taskSignature(v1), taskSignature({ ...v1, environment: 'staging' }));
  });

  it('rejects a key given twice', () => {
    assert.deepEqual(descriptions(undeclared, '{"a":1,"a":2}'), ["a: gives parameter 'a' more than once"]);
  });

  it('scans nested values containing braces, quotes and escapes correctly', () => {
    const r = validateTaskInput(undeclared, '{ "a" : "}\\"{,", "b":[{"c":"]"}] , "d" : -1.5e3 }');
    assert.deepEqual(r.violations, []);
    assert.equal(r.inputJson, '{"a":"}\\"{,","b":[{"c":"]"}],"d":-1.5e3}');
    assert.deepEqual(r.input, { a: '}"{,', b: [{ c: ']' }], d: -1500 });
  });
});

describe('redactInput', () => {
  it('replaces the values of sensitive parameters only', () => {
    assert.equal(redactInput(restart, { action: 'stop', password: 'hunter2' }), '{"action":"stop","password":"Sensitive [value redacted]"}');
  });
});

describe('coerceTaskParameter', () => {
  it('applies the Bolt key=value rule with the parameter type', () => {
    assert.equal(coerceTaskParameter(restart, 'count', '5'), '5');
    assert.equal(coerceTaskParameter(restart, 'service', '5'), '"5"');
    // Neither 1 nor "1" is a Float: the value goes as given, so the refusal names Integer[1, 1], not String.
    assert.equal(coerceTaskParameter(restart, 'ratio', '1'), '1');
    assert.equal(coerceTaskParameter(undeclared, 'anything', '[1, 2]'), '[1, 2]'.replace(' ', ''));
  });
});
