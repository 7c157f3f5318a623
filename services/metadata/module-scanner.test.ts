import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InputMethod } from '../../gen/baton/v1/task';
import { validateTaskInput } from '../../lib/task-input';
import { scanEnvironment, taskNameOfFile, type ScannedEnvironment } from './module-scanner';

/** Writes `files` (path relative to root → content) under a new temp directory. */
function writeTree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'baton-scanner-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

const M = 'modules/acme/tasks';
const H = 'modules/helper';

describe('scanEnvironment', () => {
  let root: string;
  let env: ScannedEnvironment;

  before(async () => {
    root = writeTree({
      // name rules
      [`${M}/good.sh`]: '#!/bin/sh\necho good\n',
      [`${M}/Bad.sh`]: 'x',
      [`${M}/9lives.sh`]: 'x',
      [`${M}/my-task.sh`]: 'x',
      [`${M}/archive.tar.gz`]: 'x',
      [`${M}/noext`]: '#!/bin/sh\n',
      [`${M}/readme.md`]: '# docs',
      [`${M}/settings.conf`]: 'x=1',
      [`${M}/sub/nested.sh`]: 'x',
      // init and metadata
      [`${M}/init.sh`]: '#!/bin/sh\necho init\n',
      [`${M}/init.json`]: JSON.stringify({ description: 'The acme task', supports_noop: true, input_method: 'stdin' }),
      [`${M}/empty.json`]: '',
      [`${M}/empty.sh`]: 'x',
      [`${M}/params.json`]: JSON.stringify({
        parameters: {
          zeta: { type: 'String[1]', description: 'must be given' },
          alpha: {},
          maybe: { type: 'Optional[Integer]' },
          level: { type: 'Integer', default: 3 },
          secret: { type: 'String', sensitive: true },
          any: { type: 'Any' },
        },
      }),
      [`${M}/params.py`]: 'x',
      [`${M}/hidden.json`]: JSON.stringify({ private: true, description: 'helper', parameters: {} }),
      [`${M}/hidden.sh`]: 'x',
      // implementation resolution
      [`${M}/both.sh`]: 'x',
      [`${M}/both.ps1`]: 'x',
      [`${M}/orphan.json`]: JSON.stringify({ description: 'metadata only' }),
      [`${M}/shared.json`]: JSON.stringify({
        implementations: [
          { name: 'good.sh', requirements: ['shell'], input_method: 'environment', files: ['helper/files/util.sh'] },
          { name: 'both.ps1', requirements: ['powershell'] },
        ],
        files: ['helper/lib/ruby/'],
      }),
      [`${M}/missing.json`]: JSON.stringify({ implementations: [{ name: 'nope.sh' }] }),
      // extra files
      [`${M}/dotdot.json`]: JSON.stringify({ files: ['helper/files/../../acme/tasks/good.sh'] }),
      [`${M}/dotdot.sh`]: 'x',
      [`${M}/absolute.json`]: JSON.stringify({ files: ['/etc/passwd'] }),
      [`${M}/absolute.sh`]: 'x',
      [`${M}/noslash.json`]: JSON.stringify({ files: ['helper/lib/ruby'] }),
      [`${M}/noslash.sh`]: 'x',
      [`${M}/gone.json`]: JSON.stringify({ files: ['helper/files/gone.sh'] }),
      [`${M}/gone.sh`]: 'x',
      [`${M}/elsewhere.json`]: JSON.stringify({ files: ['nomodule/files/x.sh'] }),
      [`${M}/elsewhere.sh`]: 'x',
      [`${M}/badmount.json`]: JSON.stringify({ files: ['helper/manifests/init.pp'] }),
      [`${M}/badmount.sh`]: 'x',
      // broken metadata
      [`${M}/broken.json`]: '{"description": "oops",',
      [`${M}/broken.sh`]: 'x',
      [`${M}/wrongtype.json`]: JSON.stringify({ parameters: ['a'] }),
      [`${M}/wrongtype.sh`]: 'x',
      // every mount of another module, de-duplication, bad shapes
      [`${M}/mounts.json`]: JSON.stringify({
        files: ['helper/scripts/run.sh', 'helper/tasks/probe.sh', 'helper/files/util.sh'],
        implementations: [{ name: 'good.sh', files: ['helper/files/util.sh', 'helper/lib/ruby/b.rb'] }],
      }),
      [`${M}/fileslash.json`]: JSON.stringify({ files: ['helper/files/util.sh/'] }),
      [`${M}/fileslash.sh`]: 'x',
      [`${M}/badreq.json`]: JSON.stringify({ implementations: [{ name: 'good.sh', requirements: 'shell' }] }),
      // parameter types (lib/puppet-types), with the environment's type aliases
      [`${M}/typed.json`]: JSON.stringify({
        parameters: {
          port: { type: 'Helper::Port' },
          strict_port: { type: 'Helper::Strictport' },
          either: { type: 'Variant[String, Undef]' },
          unknown: { type: 'Nosuch::Type' },
        },
      }),
      [`${M}/typed.sh`]: 'x',
      [`${M}/badtype.json`]: JSON.stringify({ parameters: { ok: { type: 'String' }, lang: { type: 'Enum[LG,no]' } } }),
      [`${M}/badtype.sh`]: 'x',
      [`${M}/badalias.json`]: JSON.stringify({ parameters: { loop: { type: 'Helper::Loop' } } }),
      [`${M}/badalias.sh`]: 'x',
      [`${H}/types/port.pp`]: '# a port, or nothing\ntype Helper::Port = Optional[Integer[1, 65535]]\n',
      [`${H}/types/strictport.pp`]: 'type Helper::Strictport = Integer[1, 65535]\n',
      [`${H}/types/loop.pp`]: 'type Helper::Loop = Variant[Helper::Loop, String]\n',
      [`${H}/scripts/run.sh`]: 'run\n',
      [`${H}/tasks/probe.sh`]: 'probe\n',
      [`${H}/files/util.sh`]: 'util\n',
      [`${H}/lib/ruby/b.rb`]: 'b\n',
      [`${H}/lib/ruby/a/deep.rb`]: 'deep\n',
      [`${H}/lib/ruby/.hidden`]: 'dot files are skipped',
      [`${H}/manifests/init.pp`]: 'class helper {}',
      'modules/Not_A_Module/tasks/x.sh': 'x',
    });
    env = await scanEnvironment('production', root);
  });

  after(() => rmSync(root, { recursive: true, force: true }));

  const task = (name: string) => {
    const t = env.byName.get(name);
    assert.ok(t, `task ${name} is in the catalog`);
    return t;
  };
  const loaded = (name: string) => {
    const t = task(name);
    assert.equal(t.error, undefined, `task ${name} loads (error: ${t.error?.msg})`);
    assert.ok(t.task);
    return t.task;
  };
  const broken = (name: string, kind: string) => {
    const t = task(name);
    assert.equal(t.error?.kind, kind, `task ${name} fails with ${kind} (got ${t.error?.kind}: ${t.error?.msg})`);
    assert.equal(t.task, undefined);
    return t.error;
  };

  it('names tasks after the file without its last extension', () => {
    assert.equal(taskNameOfFile('good.sh'), 'good');
    assert.equal(taskNameOfFile('archive.tar.gz'), 'archive.tar');
    assert.equal(taskNameOfFile('noext'), 'noext');
    assert.deepEqual(
      loaded('acme::noext').files.map((f) => f.path),
      ['acme/tasks/noext'],
    );
  });

  it('silently ignores files whose task name is invalid, .md and .conf files, subdirectories and bad module names', () => {
    const names = env.tasks.map((t) => t.name);
    for (const ignored of ['acme::Bad', 'acme::9lives', 'acme::my-task', 'acme::archive.tar', 'acme::readme', 'acme::settings', 'acme::nested', 'acme::sub']) {
      assert.ok(!names.includes(ignored), `${ignored} is not a task`);
    }
    assert.ok(!names.some((n) => n.toLowerCase().startsWith('not_a_module')));
    assert.deepEqual([...names].sort(), names, 'tasks are sorted by name');
  });

  it('addresses the init task by the module name and reads its metadata', () => {
    assert.equal(env.byName.get('acme::init'), undefined);
    const t = loaded('acme');
    assert.equal(t.description, 'The acme task');
    assert.equal(t.supportsNoop, true);
    assert.equal(t.inputMethod, InputMethod.INPUT_METHOD_STDIN);
    assert.equal(t.environment, 'production');
    assert.deepEqual(t.files, [{ path: 'acme/tasks/init.sh', sha256: sha256('#!/bin/sh\necho init\n'), sizeBytes: 20 }]);
    assert.equal(t.metadataJson, JSON.stringify({ description: 'The acme task', supports_noop: true, input_method: 'stdin' }));
  });

  it('treats an empty metadata file and a missing one as {} with no declared parameters', () => {
    for (const name of ['acme::empty', 'acme::good']) {
      const t = loaded(name);
      assert.equal(t.metadataJson, '{}');
      assert.equal(t.parametersDeclared, false);
      assert.deepEqual(t.parameters, []);
      assert.equal(t.inputMethod, InputMethod.INPUT_METHOD_UNSPECIFIED);
    }
    assert.equal(loaded('acme::hidden').parametersDeclared, true, 'parameters: {} declares "no parameters"');
  });

  it('lists parameters sorted by name with their type (Data when absent), default and required flag', () => {
    const byName = new Map(loaded('acme::params').parameters.map((p) => [p.name, p]));
    assert.deepEqual([...byName.keys()], ['alpha', 'any', 'level', 'maybe', 'secret', 'zeta']);
    assert.deepEqual(byName.get('alpha'), { name: 'alpha', type: 'Data', description: '', sensitive: false, defaultValue: undefined, required: false });
    assert.equal(byName.get('zeta')?.required, true);
    assert.equal(byName.get('zeta')?.description, 'must be given');
    assert.equal(byName.get('maybe')?.required, false);
    assert.equal(byName.get('any')?.required, false);
    assert.equal(byName.get('level')?.required, false, 'a default makes it optional');
    assert.equal(byName.get('level')?.defaultValue, 3);
    assert.equal(byName.get('secret')?.sensitive, true);
    assert.equal(byName.get('secret')?.required, true);
  });

  it('keeps private tasks, flagged, with their description', () => {
    const t = task('acme::hidden');
    assert.equal(t.private, true);
    assert.equal(t.description, 'helper');
    assert.equal(loaded('acme::hidden').private, true);
  });

  it('fails a metadata-only task without implementations with puppet.tasks/no-implementation', () => {
    broken('acme::orphan', 'puppet.tasks/no-implementation');
    assert.equal(task('acme::orphan').description, 'metadata only', 'a broken task still shows its description');
  });

  it('fails a task with several executables with puppet.tasks/multiple-implementations', () => {
    const err = broken('acme::both', 'puppet.tasks/multiple-implementations');
    assert.match(err?.msg ?? '', /both\.ps1, both\.sh/);
  });

  it('fails an implementation naming a missing file with puppet.tasks/missing-implementation', () => {
    const err = broken('acme::missing', 'puppet.tasks/missing-implementation');
    assert.deepEqual(err?.details, { missing: ['nope.sh'] });
  });

  it("resolves implementations to other tasks' executables, then extra files, directories recursively", () => {
    const t = loaded('acme::shared');
    assert.deepEqual(
      t.files.map((f) => f.path),
      ['acme/tasks/good.sh', 'acme/tasks/both.ps1', 'helper/lib/ruby/a/deep.rb', 'helper/lib/ruby/b.rb', 'helper/files/util.sh'],
    );
    assert.deepEqual(t.files[4], { path: 'helper/files/util.sh', sha256: sha256('util\n'), sizeBytes: 5 });
    assert.deepEqual(t.implementations, [
      { path: 'acme/tasks/good.sh', requirements: ['shell'], inputMethod: InputMethod.INPUT_METHOD_ENVIRONMENT, files: ['helper/files/util.sh'] },
      { path: 'acme/tasks/both.ps1', requirements: ['powershell'], inputMethod: InputMethod.INPUT_METHOD_UNSPECIFIED, files: [] },
    ]);
    assert.equal(env.files.get('helper/lib/ruby/a/deep.rb'), join(root, H, 'lib/ruby/a/deep.rb'));
    assert.equal(env.files.has('helper/lib/ruby/.hidden'), false);
  });

  it('decides required from the parsed type, resolving the module type aliases of the environment', () => {
    const required = Object.fromEntries(loaded('acme::typed').parameters.map((p) => [p.name, p.required]));
    assert.deepEqual(required, { either: false, port: false, strict_port: true, unknown: true });
  });

  it('sends the aliases a task uses with the task, so the scheduler validates input as the catalog does', () => {
    const typed = loaded('acme::typed');
    assert.deepEqual(typed.typeAliases, { 'Helper::Port': 'Optional[Integer[1, 65535]]', 'Helper::Strictport': 'Integer[1, 65535]' });
    const input = (json: string) => validateTaskInput(typed, json).violations.map((v) => v.description);
    assert.deepEqual(
      input('{"strict_port": 8080, "port": 22, "unknown": "x"}').filter((d) => !d.includes("'unknown'")),
      [],
    );
    assert.ok(input('{"strict_port": 0, "unknown": "x"}').includes("parameter 'strict_port' expects an Integer[1, 65535] value, got Integer[0, 0]"));
    assert.deepEqual(loaded('acme::mounts').typeAliases, {});
  });

  it('fails a task whose parameter type does not parse, naming the parameter and the parse error', () => {
    const err = broken('acme::badtype', 'puppet.tasks/invalid-metadata');
    assert.match(err?.msg ?? '', /^task acme::badtype: parameter 'lang' has an invalid type: invalid type 'Enum\[LG,no\]' at position \d+: expected /);
    assert.deepEqual(err?.details, { parameter: 'lang', type: 'Enum[LG,no]' });
    assert.match(
      broken('acme::badalias', 'puppet.tasks/invalid-metadata')?.msg ?? '',
      /parameter 'loop' has an invalid type: type alias Helper::Loop .*refers to itself/,
    );
  });

  it('takes extra files from the files, lib, scripts and tasks mounts of any module, each path once', () => {
    const t = loaded('acme::mounts');
    assert.deepEqual(
      t.files.map((f) => f.path),
      ['acme/tasks/good.sh', 'helper/scripts/run.sh', 'helper/tasks/probe.sh', 'helper/files/util.sh', 'helper/lib/ruby/b.rb'],
    );
    assert.deepEqual(t.implementations[0].files, ['helper/files/util.sh', 'helper/lib/ruby/b.rb']);
    assert.equal(env.files.get('helper/scripts/run.sh'), join(root, H, 'scripts/run.sh'));
    assert.ok(loaded('helper::probe'), "another module's task file is still its own task too");
  });

  it("loads a metadata-only task whose implementations name other tasks' executables", () => {
    assert.ok(!env.files.has('acme/tasks/shared.sh'));
    assert.equal(loaded('acme::shared').implementations.length, 2);
  });

  it('refuses a file named with a trailing / and requirements that are not an array', () => {
    assert.match(broken('acme::fileslash', 'puppet.tasks/invalid-metadata')?.msg ?? '', /is a file; only directories may end with a trailing \//);
    assert.match(broken('acme::badreq', 'puppet.tasks/invalid-metadata')?.msg ?? '', /'implementations\[0\]\.requirements' must be an array of strings/);
  });

  it('refuses extra files with relative components, absolute paths, unknown modules or mounts, and directories without a trailing /', () => {
    assert.match(broken('acme::dotdot', 'puppet.tasks/invalid-metadata')?.msg ?? '', /relative/);
    assert.match(broken('acme::absolute', 'puppet.tasks/invalid-metadata')?.msg ?? '', /absolute/);
    assert.match(broken('acme::elsewhere', 'puppet.tasks/invalid-metadata')?.msg ?? '', /module 'nomodule'/);
    assert.match(broken('acme::badmount', 'puppet.tasks/invalid-metadata')?.msg ?? '', /mount 'manifests'/);
    assert.match(broken('acme::noslash', 'puppet.tasks/invalid-metadata')?.msg ?? '', /trailing \//);
    assert.match(broken('acme::gone', 'puppet.tasks/invalid-file')?.msg ?? '', /helper\/files\/gone\.sh/);
  });

  it('keeps a task with broken metadata, with its error, without hiding the others', () => {
    const err = broken('acme::broken', 'puppet.tasks/unparseable-metadata');
    assert.match(err?.msg ?? '', /acme\/tasks\/broken\.json/);
    assert.match(broken('acme::wrongtype', 'puppet.tasks/invalid-metadata')?.msg ?? '', /'parameters' must be an object/);
    loaded('acme::good');
    assert.ok(!env.files.has('acme/tasks/broken.sh'), 'files of broken tasks are not served');
    assert.ok(env.files.has('acme/tasks/good.sh'));
  });

  it(
    'fails a metadata file it cannot read with puppet.tasks/unreadable-metadata',
    { skip: process.getuid?.() === 0 ? 'root reads any file' : false },
    async () => {
      const dir = writeTree({ [`${M}/locked.json`]: '{}', [`${M}/locked.sh`]: 'x' });
      try {
        chmodSync(join(dir, M, 'locked.json'), 0o000);
        const scanned = await scanEnvironment('production', dir);
        assert.equal(scanned.byName.get('acme::locked')?.error?.kind, 'puppet.tasks/unreadable-metadata');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it('scans an environment without a modules directory as empty', async () => {
    const empty = await scanEnvironment('empty', join(root, 'nothing-here'));
    assert.deepEqual(empty.tasks, []);
  });
});
