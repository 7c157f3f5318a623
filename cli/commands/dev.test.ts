import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../lib/package-root';
import { runCli, type CliRun } from '../../test/helpers/cli';
import { waitFor } from '../../test/helpers/wait';

const show = (r: CliRun) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

describe('baton dev --tls', () => {
  it('runs the stack with mutual TLS and plain baton commands in another terminal find its operator certificate', async () => {
    const state = mkdtempSync(join(tmpdir(), 'baton-dev-tls-'));
    const env = { XDG_STATE_HOME: state };
    const dev = spawn(process.execPath, [join(packageRoot(), 'dist', 'cli', 'main.js'), 'dev', '--tls', '--agents', '1'], {
      env: { ...process.env, ...env, XDG_CONFIG_HOME: '/nonexistent/baton-test' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    dev.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => dev.once('exit', (code) => resolve(code)));
    try {
      await waitFor('baton dev to be ready', () => stderr.includes('Press Ctrl-C'), 60_000);
      assert.match(stderr, /tls {8}mutual TLS; CA \S+\/pki\/ca\.pem/);

      const config = await runCli(['config', 'show'], env);
      assert.equal(config.code, 0, show(config));
      assert.match(config.stdout, new RegExp(`tls-cert +\\S+/pki/operator-alice\\.pem +running 'baton dev' \\(pid \\d+, ${state}/baton/dev/\\d+\\.json\\)`));

      const run = await runCli(['tasks', 'run', 'demo::echo', '--message', 'hi', '-I', 'node1'], env);
      assert.equal(run.code, 0, show(run));
      assert.match(run.stdout, /Caller: cert=alice\n/);
    } finally {
      dev.kill('SIGINT');
      assert.equal(await exited, 0, stderr);
      rmSync(state, { recursive: true, force: true });
    }
  });
});
