import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { waitFor } from '../../test/helpers/wait';
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

  it('answers from the last scan at once and sees an edited module once the rescan it started has finished', async () => {
    writeFileSync(join(tasks('production'), 'hello.sh'), 'v1');
    const catalog = new Catalog({ environmentPath: root, rescanIntervalMs: 0 });
    const first = await catalog.environment('production');
    const before = first?.byName.get('acme::hello')?.task?.files[0].sha256;
    writeFileSync(join(tasks('production'), 'hello.sh'), 'v2');
    writeFileSync(join(tasks('production'), 'added.sh'), 'new');
    assert.equal(await catalog.environment('production'), first, 'a stale scan is served while the rescan runs');
    const env = await waitFor('the rescan to see added.sh', async () => {
      const e = await catalog.environment('production');
      return e?.byName.has('acme::added') ? e : undefined;
    });
    assert.notEqual(env.byName.get('acme::hello')?.task?.files[0].sha256, before);
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
