import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Catalog } from './catalog';

describe('Catalog', () => {
  const root = mkdtempSync(join(tmpdir(), 'baton-catalog-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const tasks = (env: string) => join(root, env, 'modules', 'acme', 'tasks');

  it('lists directories named like environments, sorted', async () => {
    for (const d of ['staging', 'production', 'Bad-Env']) mkdirSync(tasks(d), { recursive: true });
    writeFileSync(join(root, 'README'), 'not an environment');
    assert.deepEqual(await new Catalog({ environmentPath: root }).environmentNames(), ['production', 'staging']);
    assert.equal(await new Catalog({ environmentPath: root }).environment('Bad-Env'), undefined);
  });

  it('sees an edited module on the next request once the rescan interval has passed', async () => {
    writeFileSync(join(tasks('production'), 'hello.sh'), 'v1');
    const catalog = new Catalog({ environmentPath: root, rescanIntervalMs: 0 });
    const before = (await catalog.environment('production'))?.byName.get('acme::hello')?.task?.files[0].sha256;
    writeFileSync(join(tasks('production'), 'hello.sh'), 'v2');
    writeFileSync(join(tasks('production'), 'added.sh'), 'new');
    const env = await catalog.environment('production');
    assert.notEqual(env?.byName.get('acme::hello')?.task?.files[0].sha256, before);
    assert.ok(env?.byName.has('acme::added'));
  });

  it('serves the same scan within the rescan interval, and shares one scan between concurrent requests', async () => {
    const catalog = new Catalog({ environmentPath: root, rescanIntervalMs: 60_000 });
    const [a, b] = await Promise.all([catalog.environment('staging'), catalog.environment('staging')]);
    assert.equal(a, b);
    writeFileSync(join(tasks('staging'), 'late.sh'), 'x');
    assert.equal(await catalog.environment('staging'), a);
    assert.equal(a?.byName.has('acme::late'), false);
  });
});
