import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { expandModulepath, modulepathSetting } from './environment-modulepath';
import { scanEnvironment } from './module-scanner';

describe('environment modulepath', () => {
  const root = mkdtempSync(join(tmpdir(), 'baton-modulepath-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const write = (path: string, content: string) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  };

  it('reads modulepath from environment.conf outside any section or in [main], skipping comments', () => {
    assert.equal(
      modulepathSetting('# control repo\nmodulepath = site-modules:modules:$basemodulepath\nmanifest = site.pp\n'),
      'site-modules:modules:$basemodulepath',
    );
    assert.equal(modulepathSetting('[main]\n; old\nmodulepath=modules\n'), 'modules');
    assert.equal(modulepathSetting('[agent]\nmodulepath = elsewhere\n'), undefined);
    assert.equal(modulepathSetting('config_version = scripts/version.sh\n'), undefined);
  });

  it('expands relative entries against the environment, $basemodulepath and $environment', () => {
    const { dirs, problems } = expandModulepath('site:/opt/$environment/mods:$basemodulepath:$codedir/x', 'production', '/envs/production', [
      '/base/a',
      '/base/b',
    ]);
    assert.deepEqual(dirs, ['/envs/production/site', '/opt/production/mods', '/base/a', '/base/b']);
    assert.deepEqual(problems, [
      "environment.conf: modulepath entry '$codedir/x' uses $codedir, which Baton does not know; expected only $basemodulepath and $environment",
    ]);
  });

  it('scans every modulepath directory in order, the first module of a name winning', async () => {
    write('production/environment.conf', 'modulepath = site-modules:modules:$basemodulepath\n');
    write('production/site-modules/profile/tasks/deploy.sh', 'site');
    write('production/site-modules/profile/tasks/deploy.json', JSON.stringify({ files: ['shared/files/lib.sh'] }));
    write('production/modules/profile/tasks/shadowed.sh', 'hidden by site-modules/profile');
    write('production/modules/app/tasks/init.sh', 'app');
    write('base/shared/files/lib.sh', 'lib');
    write('base/shared/tasks/base.sh', 'base');
    const env = await scanEnvironment('production', join(root, 'production'), { basemodulepath: [join(root, 'base')] });
    assert.deepEqual(
      env.tasks.map((t) => [t.name, t.error?.msg]),
      [
        ['app', undefined],
        ['profile::deploy', undefined],
        ['shared::base', undefined],
      ],
    );
    assert.equal(env.files.get('shared/files/lib.sh'), join(root, 'base/shared/files/lib.sh'));
    assert.deepEqual(env.problems, []);
  });

  it('uses modules:$basemodulepath when there is no environment.conf', async () => {
    write('staging/modules/app/tasks/init.sh', 'app');
    const env = await scanEnvironment('staging', join(root, 'staging'), { basemodulepath: [join(root, 'base')] });
    assert.deepEqual(
      env.tasks.map((t) => t.name),
      ['app', 'shared::base'],
    );
    assert.deepEqual(
      (await scanEnvironment('staging', join(root, 'staging'))).tasks.map((t) => t.name),
      ['app'],
    );
  });
});
