import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { acceptsUndef, describeType } from './puppet-type';
import { parseType } from './type-parser';
import { TypeSyntaxError } from './type-syntax-error';
import { TypeAliases, typeAliasesFrom, TypeAliasError } from './type-aliases';

function shown(expr: string): string {
  return describeType(parseType(expr));
}

function syntaxError(expr: string): TypeSyntaxError {
  try {
    parseType(expr);
  } catch (err) {
    assert.ok(err instanceof TypeSyntaxError, `expected TypeSyntaxError for ${expr}, got ${String(err)}`);
    return err;
  }
  assert.fail(`${expr} parsed`);
}

describe('parseType', () => {
  it('parses every built-in type the reference lists and prints it back in Puppet form', () => {
    const cases: Array<[string, string]> = [
      ['Any', 'Any'],
      ['Undef', 'Undef'],
      ['NotUndef', 'NotUndef'],
      ["NotUndef['s']", "NotUndef['s']"],
      ['Data', 'Data'],
      ['RichData', 'Data'],
      ['Scalar', 'Scalar'],
      ['ScalarData', 'ScalarData'],
      ['String', 'String'],
      ['String[1]', 'String[1]'],
      ['String[0, 5]', 'String[0, 5]'],
      ['String[Integer[2, 4]]', 'String[2, 4]'],
      ['String[default, 3]', 'String[0, 3]'],
      ['Integer', 'Integer'],
      ['Integer[1]', 'Integer[1]'],
      ['Integer[default, 5]', 'Integer[default, 5]'],
      ['Integer[-3, 0x10]', 'Integer[-3, 16]'],
      ['Integer[010]', 'Integer[8]'],
      ['Float[0.5, 2]', 'Float[0.5, 2]'],
      ['Numeric', 'Numeric'],
      ['Boolean', 'Boolean'],
      ['Boolean[true]', 'Boolean[true]'],
      ['Enum[present,absent]', "Enum['absent', 'present']"],
      ['Enum[\'a\', "b", a, true]', "Enum['a', 'b', true]"],
      ['Enum[puppet7-nightly, _x]', "Enum['_x', 'puppet7-nightly']"],
      ["Pattern[/\\A\\w+\\z/, 'x']", 'Pattern[/\\A\\w+\\z/, /x/]'],
      ['Pattern', 'Pattern'],
      ["Optional['x']", "Optional['x']"],
      ['Optional[Variant[String[1],Array[String[1]]]]', 'Optional[Variant[String[1], Array[String[1]]]]'],
      ['Variant[]', 'Variant[]'],
      ['Array', 'Array'],
      ['Array[String, 1]', 'Array[String, 1]'],
      ['Array[1, 2]', 'Array[Any, 1, 2]'],
      ['Hash', 'Hash'],
      ['Hash[String, Integer, 1, 3]', 'Hash[String, Integer, 1, 3]'],
      ['Hash[1, 2]', 'Hash[Any, Any, 1, 2]'],
      ['Tuple[String, Integer]', 'Tuple[String, Integer]'],
      ['Tuple[String, 1, default]', 'Tuple[String, 1]'],
      [
        "Struct[{a => Integer, Optional[b] => String, NotUndef[c] => Optional[String], 'd' => Any}]",
        "Struct[{'a' => Integer, Optional['b'] => String, NotUndef['c'] => Optional[String], 'd' => Any}]",
      ],
      ['Sensitive[String[1]]', 'Sensitive[String[1]]'],
      ['Collection[1]', 'Collection[1]'],
      ['Timestamp', 'Timestamp'],
      ['Regexp[/x/]', 'Regexp[/x/]'],
      ['  Optional [ String ]  ', 'Optional[String]'],
      ['Enum[a, b,]', "Enum['a', 'b']"],
      ['Peadm::Ldap_config', 'Peadm::Ldap_config'],
    ];
    for (const [expr, expected] of cases) assert.equal(shown(expr), expected, expr);
  });

  it('decides optionality as Puppet does: Optional, Undef, Any, Data or a Variant containing one', () => {
    for (const e of ['Optional[String]', 'Undef', 'Any', 'Data', 'Variant[String,Array,Undef]', 'Variant[Integer, Optional[String]]'])
      assert.equal(acceptsUndef(parseType(e)), true, e);
    for (const e of ['String', 'NotUndef', 'Scalar', 'Variant[String, Integer]', 'Sensitive[Any]', 'Peadm::Ldap_config', 'Enum[a]'])
      assert.equal(acceptsUndef(parseType(e)), false, e);
  });

  it('reports a capitalised Enum word in Puppet terms, naming the expression and position (lvm ensure_fs)', () => {
    const err = syntaxError('Optional[Enum[LG,no]]');
    assert.equal(err.position, 14);
    assert.equal(
      err.message,
      "invalid type 'Optional[Enum[LG,no]]' at position 14: expected identifiers or strings as Enum parameters; 'LG' is capitalised, so Puppet reads it as a type reference (quote it: 'LG')",
    );
  });

  it('refuses what Puppet refuses, with one line saying what was expected', () => {
    const cases: Array<[string, RegExp]> = [
      ['Enum[8140]', /position 5: expected identifiers or strings as Enum parameters/],
      ['Enum[node]', /the Puppet keyword 'node'/],
      ['Enum[]', /at least 1 parameter for Enum/],
      ['Numeric[1]', /no parameters for Numeric/],
      ['Integer[5, 1]', /lower bound not above its upper bound/],
      ['Integer[1.5]', /an integer or default/],
      ['String[-1]', /non-negative/],
      ['Optional[String', /position 15: expected ',' or '\]'/],
      ['Optional[String]]', /position 16: expected the end of the expression/],
      ['String]', /expected the end of the expression/],
      ['', /position 0: expected a type or value/],
      ['string', /a type name/],
      ["Enum['a]", /a closing '/],
      ['Pattern[/abc]', /a closing \/ for the regex/],
      ['Pattern[/(?>a)/]', /atomic group/],
      ['Pattern[/a++/]', /possessive quantifier/],
      ['Pattern[/(/]', /not a valid regular expression/],
      ['Struct[{a => Integer, a => String}]', /'a' is given twice/],
      ['Struct[{1 => Integer}]', /a Struct key/],
      ['Hash[String]', /not a key type alone/],
      ['Mod::Alias[1]', /no parameters after the type alias/],
      ['Enum[bad-]', /not ending in '-'/],
      ['Integer[09]', /octal/],
      ['Enum[12ab]', /a word cannot start with a digit/],
      ['Boolean[1]', /true or false/],
      ['Array[String, 3, 1]', /minimum size of Array not above its maximum/],
      ['Optional['.repeat(100) + 'String' + ']'.repeat(100), /levels of nesting/],
      ['String @', /not '@'/],
    ];
    for (const [expr, re] of cases) {
      const err = syntaxError(expr);
      assert.match(err.message, re, expr);
      assert.ok(err.message.startsWith(`invalid type '${expr}' at position ${err.position}: expected `), err.message);
      assert.ok(!err.message.includes('\n') || expr.includes('\n'), 'one line');
    }
  });
});

describe('TypeAliases', () => {
  it('resolves module aliases lazily, including aliases of aliases and recursive ones through containers', () => {
    const aliases = typeAliasesFrom({
      'Peadm::Ldap_config': "Struct[{base_dn => String, Optional['port'] => Peadm::Port}]",
      'Peadm::Port': 'Integer[1, 65535]',
      'Mod::Tree': 'Variant[String, Array[Mod::Tree]]',
    });
    const t = parseType('Peadm::Ldap_config', { aliases });
    assert.equal(t.kind, 'Alias');
    assert.equal(describeType(t), 'Peadm::Ldap_config');
    assert.equal(acceptsUndef(t), false);
    assert.equal(acceptsUndef(parseType('Optional[peadm::ldap_config]'.replace('peadm::ldap_config', 'Peadm::Ldap_Config'), { aliases })), true);
    assert.equal(parseType('Mod::Tree', { aliases }).kind, 'Alias');
  });

  it('reports a cycle that no container breaks, and an alias whose expression does not parse', () => {
    const aliases = typeAliasesFrom({ 'A::B': 'Optional[A::C]', 'A::C': 'Variant[String, A::B]', 'A::Bad': 'Enum[X]' });
    assert.throws(
      () => acceptsUndef(parseType('A::B', { aliases })),
      (err: Error) => err instanceof TypeAliasError && /refers to itself/.test(err.message),
    );
    assert.throws(
      () => acceptsUndef(parseType('A::Bad', { aliases })),
      (err: Error) => err instanceof TypeAliasError && /type alias A::Bad \(alias A::Bad\): invalid type 'Enum\[X\]'/.test(err.message),
    );
  });

  it('refuses an alias source that is not a type declaration', () => {
    assert.throws(() => typeAliasesFrom({}).addSource('class x {}', 'm/types/x.pp'), /m\/types\/x.pp: expected 'type Module::Name = <type expression>'/);
  });
});

describe('TypeAliases.addModuleDir', () => {
  it('reads every types/**/*.pp of a module, skipping comments, and reports a malformed file without dropping the rest', async () => {
    const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'baton-types-'));
    try {
      const mod = join(dir, 'peadm');
      mkdirSync(join(mod, 'types', 'ldap'), { recursive: true });
      writeFileSync(
        join(mod, 'types', 'ldap_config.pp'),
        "# @summary LDAP settings\ntype Peadm::Ldap_config = Struct[{\n  base_dn => String,\n  Optional['port'] => Peadm::Ldap::Port,\n}]\n",
      );
      writeFileSync(join(mod, 'types', 'ldap', 'port.pp'), 'type Peadm::Ldap::Port = Integer[1, 65535]\n');
      writeFileSync(join(mod, 'types', 'broken.pp'), 'class peadm::nope {}\n');
      const aliases = new TypeAliases();
      assert.deepEqual(aliases.addModuleDir(mod), ["peadm/types/broken.pp: expected 'type Module::Name = <type expression>'"]);
      assert.deepEqual(aliases.names().sort(), ['Peadm::Ldap::Port', 'Peadm::Ldap_config']);
      const t = parseType('Optional[Peadm::Ldap_config]', { aliases });
      assert.equal(acceptsUndef(t), true);
      assert.equal(describeType(t), 'Optional[Peadm::Ldap_config]');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
