import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseJsonLexemes, JsonNumber, JsonSyntaxError } from './json-lexeme';
import { InputShapeError, InvalidParameterTypeError, checkParameterTypes, compileSignature, coerceCliValue, type ParameterDeclaration } from './signature';
import { typeAliasesFrom } from './type-aliases';
import { isInstance } from './type-instance';
import { parseType } from './type-parser';

/** Runs `json` (a JSON value text) as parameter `p` of a one-parameter signature of `type`: the violations. */
function problems(type: string, json: string | undefined): string[] {
  const sig = compileSignature({ p: { type } });
  return sig.validate(json === undefined ? '{}' : `{"p": ${json}}`).violations.map((v) => v.description);
}

/** Every type with values it accepts and values it rejects (docs/task-format.md §7.2, §7.5). `undefined` = key absent. */
const TABLE: Array<[string, Array<string | undefined>, Array<string | undefined>]> = [
  ['Any', ['null', '1', '"x"', '[]', '{}', undefined], []],
  ['Undef', ['null', undefined], ['1', '"x"', '""']],
  ['NotUndef', ['1', '"x"', '[]'], ['null', undefined]],
  ["NotUndef['s']", ['"s"'], ['"t"', 'null']],
  ['Data', ['null', '1.5', '{"a":[1,{"b":null}]}', undefined], []],
  ['Scalar', ['"x"', '1', '1.0', 'false'], ['null', '[]', '{}', undefined]],
  ['ScalarData', ['"x"', '-3'], ['null', '[1]']],
  ['String', ['""', '"x"'], ['5', 'null', 'true', '["x"]', undefined]],
  ['String[1]', ['"x"', '"😀"'], ['""']],
  ['String[2, 3]', ['"😀😀"', '"é😀é"'], ['"😀"', '"abcd"', '"😀😀😀😀"']],
  ['String[0]', ['""'], ['1']],
  ['Integer', ['0', '-7', '123456789012345678901234567890'], ['1.0', '1e3', '"5"', 'null', '1.5']],
  ['Integer[1]', ['1', '99999999999999999999'], ['0', '-99999999999999999999']],
  ['Integer[0, 255]', ['0', '255'], ['256', '-1']],
  ['Integer[default, 5]', ['-1000', '5'], ['6']],
  ['Integer[9007199254740993, 9007199254740993]', ['9007199254740993'], ['9007199254740992', '9007199254740994']],
  ['Float', ['1.0', '1e3', '-0.5', '2E-2'], ['1', '"1.0"']],
  ['Float[0.5, 2]', ['0.5', '2.0'], ['0.4', '2.5', '1']],
  ['Numeric', ['1', '1.5', '1e400'], ['"1"', 'null']],
  ['Boolean', ['true', 'false'], ['"true"', '0', 'null']],
  ['Boolean[true]', ['true'], ['false']],
  ['Enum[present,absent]', ['"present"', '"absent"'], ['"Present"', '"other"', '1', 'null']],
  ["Enum['On', 'Off', true]", ['"on"', '"OFF"', '"oN"'], ['"maybe"', 'true']],
  ["Enum['8140', '8143']", ['"8140"'], ['8140']],
  ['Pattern[/\\w+=\\w+/]', ['"a=b"', '" a=b "'], ['"a="', '5']],
  ['Pattern[/^\\d+$/]', ['"abc\\n123"', '"12"'], ['"abc"', '"1a"']],
  ['Pattern[/\\A[a-z0-9_]+\\Z/]', ['"abc\\n"', '"a_1"'], ['"abc\\n\\n"', '"A"']],
  ['Pattern[/^[^|&]*$/]', ['"abc"', '""'], ['"a|b"', '"a&b"']],
  ["Pattern[/a/, 'b']", ['"xb"', '"a"'], ['"c"']],
  // Linear time on both paths (the compiled schema and isInstance): a backtracking engine would not
  // return from the rejected value.
  ['Pattern[/^(a|a)*$/]', ['"aaaa"', '""'], [`"${'a'.repeat(40)}b"`]],
  ['Pattern', ['""', '"anything"'], ['1']],
  ['Optional[String[1]]', ['"x"', 'null', undefined], ['""', '1']],
  ["Optional['x']", ['"x"', 'null'], ['"y"']],
  ['Variant[String,Array,Undef]', ['"x"', '[1]', 'null', undefined], ['1', '{}']],
  ["Optional[Variant[Boolean, Enum['true','false']]]", ['true', '"false"', 'null'], ['"yes"', '1']],
  ['Optional[Variant[Pattern[/^[0-9]*$/],Integer]]', ['"123"', '5', 'null'], ['"12a"', '1.5']],
  ['Variant[]', [], ['null', '1', '"x"']],
  ['Array', ['[]', '[1,"a",null]'], ['{}', '"x"', 'null']],
  ['Array[String]', ['[]', '["a","b"]'], ['[1]', '["a",null]']],
  ['Array[String, 1, 2]', ['["a"]', '["a","b"]'], ['[]', '["a","b","c"]']],
  ['Array[1, 2]', ['[1]', '[null, {}]'], ['[]', '[1,2,3]']],
  ['Hash', ['{}', '{"a":1}'], ['[]', '1', 'null']],
  ['Hash[String, Integer]', ['{"a":1}', '{}'], ['{"a":"1"}', '{"a":1.0}']],
  ['Hash[Integer, Any]', ['{}'], ['{"1":1}']],
  ['Hash[Pattern[/\\A[a-z]+\\z/], String, 1]', ['{"ab":"x"}'], ['{}', '{"A":"x"}']],
  ['Hash[1, 1]', ['{"a":null}'], ['{}', '{"a":1,"b":2}']],
  ['Tuple[String, Integer]', ['["a", 1]'], ['["a"]', '["a", 1, 2]', '[1, "a"]']],
  ['Tuple[String, Integer, 1]', ['["a"]', '["a", 1, 2, 3]'], ['[]', '["a", "b"]']],
  [
    'Struct[{a => Integer, b => Optional[String], Optional[c] => String, NotUndef[d] => Optional[Integer]}]',
    ['{"a":1,"d":null}', '{"a":1,"b":null,"c":"x","d":2}'],
    ['{"d":1}', '{"a":1}', '{"a":1,"d":1,"c":null}', '{"a":1,"d":1,"e":1}', '[]'],
  ],
  ['Sensitive[String[1]]', [], ['"secret"', 'null']],
  ['Optional[Sensitive[String[1]]]', ['null', undefined], ['"secret"']],
  ['Collection[1]', ['[1]', '{"a":1}'], ['[]', '{}', '"x"']],
  ['Timestamp', [], ['"2020-01-01"']],
  ['Peadm::Ldap_config', [], ['{}', 'null']],
];

describe('Signature: every type accepts and rejects per docs/task-format.md §7.2', () => {
  for (const [type, accepted, rejected] of TABLE) {
    it(type, () => {
      for (const json of accepted) assert.deepEqual(problems(type, json), [], `${type} should accept ${json ?? '(absent)'}`);
      for (const json of rejected) assert.notDeepEqual(problems(type, json), [], `${type} should reject ${json ?? '(absent)'}`);
      // The compiled (ajv) check and the reference semantics must agree on every present value.
      const t = parseType(type);
      for (const json of [...accepted, ...rejected]) {
        if (json === undefined) continue;
        assert.equal(isInstance(t, parseJsonLexemes(json).value), accepted.includes(json), `isInstance(${type}, ${json})`);
      }
    });
  }
});

describe('Signature: Puppet wording, one line per problem', () => {
  const sig = compileSignature({
    count: { type: 'Integer' },
    mode: { type: "Enum['a', 'b']" },
    opts: { type: 'Optional[Struct[{port => Integer[1, 65535], Optional[host] => String[1]}]]' },
    list: { type: 'Array[String, 1]' },
    x: { type: 'Optional[Integer]' },
    v: { type: 'Variant[String[1], Array[String[1]]]' },
  });
  const lines = (json: string) => sig.validate(json).violations.map((v) => `${v.field}: ${v.description}`);

  it('names missing, undeclared and mistyped parameters', () => {
    assert.deepEqual(lines('{"y": 1, "count": "5", "mode": "c"}'), [
      "y: has no parameter named 'y'",
      "count: parameter 'count' expects an Integer value, got String",
      "mode: parameter 'mode' expects a match for Enum['a', 'b'], got 'c'",
      "list: expects a value for parameter 'list'",
      "v: expects a value for parameter 'v'",
    ]);
  });

  it('describes nested problems with entry and index paths, sizes and Optional/Variant alternatives', () => {
    assert.deepEqual(lines('{"count": 1, "mode": "a", "opts": {"port": 0, "host": "", "z": 1}, "list": ["a", 2], "x": "s", "v": [""]}'), [
      "opts: parameter 'opts' entry 'port' expects an Integer[1, 65535] value, got Integer[0, 0]",
      "opts: parameter 'opts' entry 'host' expects a String[1] value, got String",
      "opts: parameter 'opts' unrecognized key 'z'",
      "list: parameter 'list' index 1 expects a String value, got Integer",
      "x: parameter 'x' expects a value of type Undef or Integer, got String",
      "v: parameter 'v' index 0 expects a String[1] value, got String",
    ]);
    assert.deepEqual(lines('{"count": 1, "mode": "a", "list": [], "v": 5}'), [
      "list: parameter 'list' expects size to be at least 1, got 0",
      "v: parameter 'v' expects a value of type String[1] or Array[String[1]], got Integer",
    ]);
    assert.deepEqual(lines('{"count": 1, "mode": "a", "list": ["a"], "v": "a", "opts": {}}'), ["opts: parameter 'opts' expects a value for key 'port'"]);
  });

  it('says an unresolved alias is unresolved, and lists it as a load-time problem', () => {
    const s = compileSignature({ ldap: { type: 'Peadm::Ldap_config' } });
    assert.deepEqual(s.problems, [
      "parameter 'ldap' references an unresolved type 'Peadm::Ldap_config' (no module of the environment declares it in types/*.pp); no value can match it",
    ]);
    assert.deepEqual(s.validate('{"ldap": {}}').violations, [
      { field: 'ldap', description: "parameter 'ldap' references an unresolved type 'Peadm::Ldap_config'" },
    ]);
  });

  it('validates through a module alias, recursive aliases included', () => {
    const aliases = typeAliasesFrom({
      'Peadm::Ldap_config': "Struct[{base_dn => String, Optional['port'] => Peadm::Port}]",
      'Peadm::Port': 'Integer[1, 65535]',
      'Mod::Tree': 'Variant[String, Array[Mod::Tree]]',
    });
    const s = compileSignature({ ldap: { type: 'Peadm::Ldap_config' }, tree: { type: 'Optional[Mod::Tree]' } }, { aliases });
    assert.deepEqual(s.problems, []);
    assert.deepEqual(s.validate('{"ldap": {"base_dn": "dc=x", "port": 636}, "tree": ["a", ["b", ["c"]]]}').violations, []);
    assert.deepEqual(
      s.validate('{"ldap": {"base_dn": "dc=x", "port": 0}, "tree": ["a", [1]]}').violations.map((v) => v.description),
      [
        "parameter 'ldap' entry 'port' expects an Integer[1, 65535] value, got Integer[0, 0]",
        "parameter 'tree' index 1 index 0 expects a value of type String or Array[Mod::Tree], got Integer",
      ],
    );
  });

  it('applies defaults for absent and null values and validates them, Optional types included', () => {
    const s = compileSignature({
      n: { type: 'Optional[Integer]', default: 5 },
      t: { type: 'String', default: '/tmp' },
      bad: { type: 'Integer', default: 'x' },
    });
    const r = s.validate('{"n": null, "bad": 1}');
    assert.deepEqual(r.violations, []);
    assert.deepEqual(
      r.entries.map((e) => `${e.key}=${e.json}`),
      ['n=5', 'bad=1', 't="/tmp"'],
    );
    assert.deepEqual(
      s.validate('{}').violations.map((v) => v.description),
      ["parameter 'bad' expects an Integer value, got String"],
    );
  });

  it('treats a parameter without a type as Data, so optional, and explains why a plain value is never Sensitive', () => {
    const s = compileSignature({ no_sync: { description: 'x' } as ParameterDeclaration, secret: { type: 'Optional[Sensitive[String[1]]]' } });
    assert.equal(s.parameter('no_sync')?.typeText, 'Data');
    assert.equal(s.parameter('no_sync')?.optional, true);
    assert.deepEqual(s.validate('{"no_sync": [1, {"a": null}]}').violations, []);
    assert.deepEqual(
      s.validate('{"secret": "pw"}').violations.map((v) => v.description),
      [
        `parameter 'secret' expects a Sensitive[String[1]] value, got String (a value from JSON is never Sensitive; declare the parameter "sensitive": true instead)`,
      ],
    );
  });

  it('accepts any well-named key without declared parameters, no key with an empty parameters object', () => {
    assert.deepEqual(compileSignature(undefined).validate('{"a": {"b": [1.0]}}').violations, []);
    assert.deepEqual(
      compileSignature(null)
        .validate('{"Bad": 1}')
        .violations.map((v) => v.description),
      ["has an invalid parameter name 'Bad' (expected ^[a-z][a-z0-9_]*$)"],
    );
    assert.deepEqual(
      compileSignature({})
        .validate('{"a": 1}')
        .violations.map((v) => v.description),
      ["has no parameter named 'a'"],
    );
  });

  it('rejects metaparameters and duplicate keys', () => {
    assert.deepEqual(
      compileSignature(undefined)
        .validate('{"_noop": true, "a": 1, "a": 2}')
        .violations.map((v) => v.description),
      ["gives parameter 'a' more than once", "has no parameter named '_noop' (keys starting with '_' are metaparameters set by Baton)"],
    );
  });

  it('refuses input that is not a JSON object with one line', () => {
    assert.throws(
      () => compileSignature(undefined).validate('[1]'),
      (e: Error) => e instanceof InputShapeError && e.message === 'input must be a JSON object, got Array',
    );
    assert.throws(
      () => compileSignature(undefined).validate('{"a": 01}'),
      (e: Error) => e instanceof InputShapeError && /^input must be a JSON object: expected ',' or '}' in an object at position 7, got '1'$/.test(e.message),
    );
  });

  it('fails to compile a parameter whose type is not valid Puppet, naming the parameter', () => {
    assert.throws(
      () => compileSignature({ fs: { type: 'Optional[Enum[LG,no]]' } }),
      (e: Error) =>
        e instanceof InvalidParameterTypeError &&
        e.parameter === 'fs' &&
        e.message.startsWith("parameter 'fs' has an invalid type: invalid type 'Optional[Enum[LG,no]]' at position 14"),
    );
  });
});

describe('checkParameterTypes', () => {
  it('reports every unusable type and every type nothing can match, without stopping at the first', () => {
    const aliases = typeAliasesFrom({ 'A::Loop': 'Optional[A::Loop]' });
    const r = checkParameterTypes(
      {
        a: { type: 'Enum[LG,no]' },
        b: { type: 'String[' },
        c: { type: 'A::Loop' },
        d: { type: 'Peadm::Ldap_config' },
        e: { type: 'Sensitive[String]' },
        f: { type: 'Optional[Timestamp]' },
        g: { type: 'String' },
      },
      { aliases },
    );
    assert.deepEqual(
      r.errors.map((e) => e.parameter),
      ['a', 'b', 'c'],
    );
    assert.match(r.errors[2].message, /^parameter 'c' has an invalid type: type alias A::Loop \(alias A::Loop\) refers to itself/);
    assert.deepEqual(r.warnings, [
      "parameter 'd' references an unresolved type 'Peadm::Ldap_config'; no value can match it",
      "parameter 'e' has type Sensitive[String], which no JSON value can match",
    ]);
  });
});

describe('parseJsonLexemes', () => {
  it('keeps number lexemes, integers beyond 2^53 exactly, and __proto__ as data', () => {
    const { value, members } = parseJsonLexemes('{"a": 1.0, "b": 12345678901234567890123, "__proto__": {"x": 1}}');
    assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof JsonNumber));
    assert.deepEqual(
      members!.map((m) => m.json),
      ['1.0', '12345678901234567890123', '{"x": 1}'],
    );
    assert.equal((value.a as JsonNumber).isInteger, false);
    assert.equal((value.b as JsonNumber).bigint, 12345678901234567890123n);
    assert.equal(Object.getPrototypeOf(value), null);
  });

  it('rejects what JSON.parse rejects', () => {
    for (const bad of ['', '{', '[1,]', '{"a":1,}', '01', '1.', '.5', '"\\x"', "'a'", 'nul', '"a\nb"', '{"a" 1}', '1 2', 'NaN']) {
      assert.throws(() => parseJsonLexemes(bad), JsonSyntaxError, bad);
      assert.throws(() => JSON.parse(bad) as unknown, SyntaxError, bad);
    }
  });
});

describe('coerceCliValue (Bolt key=value rule, docs/task-format.md §8)', () => {
  const c = (type: string | undefined, raw: string) => coerceCliValue(type === undefined ? undefined : parseType(type), raw).json;
  it('keeps the JSON value when it matches the type, else the string when that matches, else the value as given', () => {
    assert.equal(c('Integer', '5'), '5');
    assert.equal(c('String', '5'), '"5"');
    assert.equal(c('Boolean', 'true'), 'true');
    assert.equal(c("Variant[Boolean, Enum['true','false']]", 'true'), 'true');
    assert.equal(c('Optional[String]', 'null'), 'null');
    assert.equal(c('Array[String]', '["a","b"]'), '["a","b"]');
    assert.equal(c('String', '"quoted"'), '"quoted"');
    // Neither the Float nor the string fits: the Float is kept, so the refusal names 1.0, not "a
    // String".
    assert.equal(c('Integer', '1.0'), '1.0');
    assert.equal(c('Integer[1,10]', '99'), '99');
    assert.equal(c('Enum[a,b]', '5'), '5');
    assert.equal(c('Float', '1.0'), '1.0');
    assert.equal(c('Integer', '123456789012345678901234567890'), '123456789012345678901234567890');
    assert.equal(c('String', 'not json'), '"not json"');
    assert.equal(c(undefined, '{"a":1}'), '{"a":1}');
    assert.equal(c(undefined, 'plain'), '"plain"');
  });
});
