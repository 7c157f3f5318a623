import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { packageRoot } from '../../lib/package-root';

// The sample tasks the catalog serves (examples/modules) are what the other pieces' tests
// and the demo run; this checks each prints what its metadata promises.
const TASKS = join(packageRoot(), 'examples', 'modules', 'production', 'modules', 'demo', 'tasks');

function run(script: string, env: Record<string, string> = {}, input = '') {
  const r = spawnSync(join(TASKS, script), [], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, input, encoding: 'utf8', timeout: 10_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('examples/modules demo tasks', () => {
  it('demo::echo prints valid JSON for any message, without evaluating it', () => {
    const message = 'he said "hi" \\ $(echo no) `echo no`\ttab\u0001\nsecond line\n';
    const r = run('echo.sh', { PT_message: message, PT_count: '3' });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { message: string; count: unknown; node: string };
    assert.equal(out.message, message);
    assert.equal(out.count, 3);
    assert.ok(out.node.length > 0);
    assert.equal((JSON.parse(run('echo.sh', { PT_message: 'x' }).stdout) as { count: unknown }).count, 1, 'count defaults to 1');
  });

  it('demo echoes its stdin JSON document back under "input"', () => {
    const r = run('init.sh', {}, '{"a":[1,2],"_task":"demo"}');
    assert.deepEqual(JSON.parse(r.stdout), { input: { a: [1, 2], _task: 'demo' } });
  });

  it('demo::uptime prints plain text and demo::fail exits 3 with a line on stderr', () => {
    const up = run('uptime.sh');
    assert.equal(up.code, 0);
    assert.ok(up.stdout.trim().length > 0);
    assert.throws(() => JSON.parse(up.stdout) as unknown);
    const fail = run('fail.sh');
    assert.equal(fail.code, 3);
    assert.match(fail.stderr, /failing on purpose/);
  });
});
