import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../lib/free-port';
import { waitFor } from '../test/helpers/wait';

const MAIN = join(__dirname, 'main.js');

/** The environment without BATON_* settings of whoever runs the tests, plaintext (no certificates). */
function cleanEnv(): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BATON_'))), BATON_INSECURE: 'true' };
}

describe('baton-agent main', () => {
  it('prints one line naming the bad flag and exits 2', () => {
    const r = spawnSync(process.execPath, [MAIN, '--scheduler-address', '127.0.0.1:1', '--heartbeat-interval-s', 'soon'], {
      env: cleanEnv(),
      encoding: 'utf8',
    });
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      "baton-agent: configuration: heartbeat-interval-s must be integer (seconds between heartbeats when the scheduler's Welcome gives none) [from flag --heartbeat-interval-s]\n",
    );
  });

  it('exits 2 with one line when the scheduler address is missing or malformed', () => {
    for (const args of [[], ['--scheduler-address', 'no-port']]) {
      const r = spawnSync(process.execPath, [MAIN, ...args], { env: cleanEnv(), encoding: 'utf8' });
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /^baton-agent: configuration: .*scheduler-address/);
    }
  });

  it('creates its directories 0750 and stops on SIGTERM with exit 0 while the scheduler is unreachable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-agent-main-'));
    const port = await freePort(); // nothing listens there
    const child = spawn(
      process.execPath,
      [MAIN, '--scheduler-address', `127.0.0.1:${port}`, '--identity', 'test-node', '--cache-dir', join(dir, 'cache'), '--spool-dir', join(dir, 'state/spool')],
      { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitFor('the agent to start', () => stderr.includes('"msg":"agent started"'));
    assert.equal(statSync(join(dir, 'cache')).mode & 0o777, 0o750);
    assert.equal(statSync(join(dir, 'state/spool')).mode & 0o777, 0o750);
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});
