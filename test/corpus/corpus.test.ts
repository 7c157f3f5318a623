import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  compileSignature,
  InvalidParameterTypeError,
  parseType,
  stringifyJsonValue,
  TypeSyntaxError,
  type ParameterDeclaration,
  type Signature,
} from '../../lib/puppet-types';
import { acceptedSample, rejectedSample } from '../../lib/puppet-types/type-samples';
import { corpusLocation } from '../helpers/corpus';

/**
 * The conformance corpus (docs/task-format.md §10): 121 real metadata files from 21 modules. Every
 * parameter type is parsed and compiled; a value each type accepts and one it rejects, built from
 * the AST, go through the task's compiled signature. The known bad types are counted exactly:
 * lvm::ensure_fs `Optional[Enum[LG,no]]` (invalid Puppet, docs/task-format.md §7.3) and
 * peadm::pe_ldap_config
 * `Peadm::Ldap_config` (an alias from peadm's types/, which the corpus does not ship, docs/task-format.md §7.5).
 */

const CORPUS = corpusLocation();

interface CorpusTask {
  name: string;
  parameters: Record<string, ParameterDeclaration> | undefined;
}

function loadCorpus(dir: string): CorpusTask[] {
  const tasks: CorpusTask[] = [];
  for (const mod of readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort()) {
    for (const file of readdirSync(join(dir, mod))
      .filter((f) => f.endsWith('.json'))
      .sort()) {
      const meta = JSON.parse(readFileSync(join(dir, mod, file), 'utf8')) as { parameters?: Record<string, ParameterDeclaration> };
      const task = file.slice(0, -'.json'.length);
      tasks.push({ name: task === 'init' ? mod : `${mod}::${task}`, parameters: meta.parameters });
    }
  }
  return tasks;
}

/** An input giving every parameter a value its type accepts (optional ones too, where a sample exists). */
function fullInput(sig: Signature): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of sig.parameters) {
    const v = acceptedSample(p.type);
    if (v !== undefined) out[p.name] = stringifyJsonValue(v);
  }
  return out;
}

function render(members: Record<string, string>): string {
  return `{${Object.entries(members)
    .map(([k, json]) => `${JSON.stringify(k)}:${json}`)
    .join(',')}}`;
}

describe('corpus: every task metadata file of the conformance corpus', { skip: CORPUS.skip }, () => {
  const tasks = CORPUS.dir ? loadCorpus(CORPUS.dir) : [];
  const loadErrors: string[] = [];
  const problems: string[] = [];
  const compiled = new Map<string, Signature>();
  for (const t of tasks) {
    try {
      const sig = compileSignature(t.parameters);
      compiled.set(t.name, sig);
      problems.push(...sig.problems.map((p) => `${t.name}: ${p}`));
    } catch (err) {
      assert.ok(err instanceof InvalidParameterTypeError, `${t.name}: ${String(err)}`);
      loadErrors.push(`${t.name}: ${err.message}`);
    }
  }

  it('holds 121 files, 517 parameters and 65 distinct type expressions', () => {
    assert.equal(tasks.length, 121);
    const params = tasks.flatMap((t) => Object.values(t.parameters ?? {}));
    assert.equal(params.length, 517);
    assert.equal(new Set(params.map((p) => p.type ?? '(none)')).size, 65);
    assert.equal(tasks.filter((t) => t.parameters === undefined).length, 2);
  });

  it('parses every type expression but the invalid Enum, which is reported at load in Puppet terms', () => {
    const failures: string[] = [];
    for (const t of tasks) {
      for (const [name, p] of Object.entries(t.parameters ?? {})) {
        try {
          parseType(p.type ?? 'Data');
        } catch (err) {
          assert.ok(err instanceof TypeSyntaxError, `${t.name} ${name}: threw ${String(err)}`);
          failures.push(`${t.name} ${name}: ${err.message}`);
        }
      }
    }
    assert.deepEqual(failures, [
      "lvm::ensure_fs compress: invalid type 'Optional[Enum[LG,no]]' at position 14: expected identifiers or strings as Enum parameters; 'LG' is capitalised, so Puppet reads it as a type reference (quote it: 'LG')",
    ]);
  });

  it('compiles every task but lvm::ensure_fs, and reports the unresolved peadm alias as a load-time problem', () => {
    assert.deepEqual(loadErrors, [
      "lvm::ensure_fs: parameter 'compress' has an invalid type: invalid type 'Optional[Enum[LG,no]]' at position 14: expected identifiers or strings as Enum parameters; 'LG' is capitalised, so Puppet reads it as a type reference (quote it: 'LG')",
    ]);
    assert.equal(compiled.size, 120);
    assert.deepEqual(problems, [
      "peadm::pe_ldap_config: parameter 'ldap_config' references an unresolved type 'Peadm::Ldap_config' (no module of the environment declares it in types/*.pp); no value can match it",
    ]);
  });

  it('accepts a value of every parameter type and rejects a wrong one, through each compiled signature', () => {
    let accepted = 0;
    let rejected = 0;
    const noAccepted: string[] = [];
    for (const [name, sig] of compiled) {
      const base = fullInput(sig);
      const baseProblems = sig.validate(render(base)).violations;
      const unmatchable = new Set(sig.parameters.filter((p) => acceptedSample(p.type) === undefined).map((p) => p.name));
      assert.deepEqual(
        baseProblems.filter((v) => !unmatchable.has(v.field)),
        [],
        `${name}: a full sample input`,
      );
      for (const p of sig.parameters) {
        if (unmatchable.has(p.name)) {
          noAccepted.push(`${name} ${p.name}: ${p.typeText}`);
        } else {
          accepted++;
        }
        const bad = rejectedSample(p.type);
        if (bad === undefined) continue; // Data / Any: nothing to reject
        const r = sig.validate(render({ ...base, [p.name]: stringifyJsonValue(bad) }));
        const mine = r.violations.filter((v) => v.field === p.name);
        assert.ok(mine.length > 0, `${name}: ${p.name} (${p.typeText}) should reject ${stringifyJsonValue(bad)}`);
        assert.ok(
          mine.every((v) => v.description.startsWith(`parameter '${p.name}' `) || v.description === `expects a value for parameter '${p.name}'`),
          JSON.stringify(mine),
        );
        rejected++;
      }
    }
    // Only peadm's unresolved alias has no value at all; Optional[Sensitive[...]] accepts null only.
    assert.deepEqual(noAccepted, ['peadm::pe_ldap_config ldap_config: Peadm::Ldap_config']);
    // Every parameter of the 120 compiled tasks but the unresolved alias has an accepted value.
    const ensureFs = Object.keys(tasks.find((t) => t.name === 'lvm::ensure_fs')!.parameters!).length;
    assert.equal(accepted, 517 - ensureFs - 1);
    // Everything has a rejected value except Data / Any / untyped parameters.
    const acceptsAll = [...compiled.values()].flatMap((s) => s.parameters).filter((p) => p.type.kind === 'Data' || p.type.kind === 'Any').length;
    assert.equal(rejected, 517 - ensureFs - acceptsAll);
  });

  it('keeps the spec-listed edge cases: optional via Undef in a Variant, no type means Data, defaults of every kind', () => {
    const docker = [...compiled.entries()].find(([, s]) => s.parameters.some((p) => p.typeText === 'Variant[String,Array,Undef]'));
    assert.ok(docker);
    assert.equal(docker[1].parameters.find((p) => p.typeText === 'Variant[String,Array,Undef]')!.optional, true);
    const noSync = compiled.get('lvm::ensure_lv')?.parameter('no_sync');
    assert.equal(noSync?.typeText, 'Data');
    assert.equal(noSync?.optional, true);
    assert.deepEqual(
      compiled
        .get('facts')!
        .validate('{"x":1}')
        .violations.map((v) => v.description),
      ["has no parameter named 'x'"],
    );
    assert.deepEqual(compiled.get('reboot::last_boot_time')!.validate('{"anything":[1]}').violations, []);
    const withDefaults = [...compiled.values()].filter((s) => s.parameters.some((p) => p.default !== undefined));
    for (const s of withDefaults) {
      const r = s.validate(render(Object.fromEntries(Object.entries(fullInput(s)).filter(([k]) => s.parameter(k)?.default === undefined))));
      assert.deepEqual(
        r.violations.filter((v) => s.parameter(v.field)?.default !== undefined),
        [],
        'a default conforms to its type',
      );
    }
  });
});
