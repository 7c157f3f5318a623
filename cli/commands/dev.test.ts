import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

describe('baton dev --logs', () => {
  it("writes each process's log lines to DIR/<name>.log, kept after the stack stops", async () => {
    const state = mkdtempSync(join(tmpdir(), 'baton-dev-logs-'));
    const logs = join(state, 'logs');
    try {
      const run = await runCli(['dev', '--agents', '1', '--log-level', 'info', '--logs', logs, '--run', 'tasks list'], { XDG_STATE_HOME: state });
      assert.equal(run.code, 0, show(run));
      assert.ok(run.stderr.includes(`logs       ${logs}/<name>.log (level info)`), show(run));
      assert.doesNotMatch(run.stderr, /^\[scheduler\]/m, 'the lines go to the files, not the terminal');
      const lines = readFileSync(join(logs, 'scheduler.log'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { msg: string; address?: string });
      assert.ok(
        lines.some((l) => l.msg === 'listening' && l.address),
        `scheduler.log: ${lines.map((l) => l.msg).join(', ')}`,
      );
      for (const name of ['metadata', 'results', 'node1']) assert.ok(existsSync(join(logs, `${name}.log`)), `no ${name}.log`);
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });

  it('refuses a --logs path that cannot be a directory, with one line, starting nothing', async () => {
    const state = mkdtempSync(join(tmpdir(), 'baton-dev-logs-'));
    try {
      const file = join(state, 'a-file');
      writeFileSync(file, '');
      const run = await runCli(['dev', '--logs', file, '--run', 'tasks list'], { XDG_STATE_HOME: state });
      assert.notEqual(run.code, 0);
      assert.match(run.stderr, /--logs .*a-file: cannot create or use this directory/);
      assert.doesNotMatch(run.stderr, /Starting redis-server|\n\s+at /);
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });
});

describe('baton dev --schedulers', () => {
  it('starts several scheduler replicas, and a run through the first reaches every agent, whichever replica holds it', async () => {
    const state = mkdtempSync(join(tmpdir(), 'baton-dev-replicas-'));
    try {
      const run = await runCli(['dev', '--schedulers', '2', '--agents', '4', '--run', 'tasks run demo::echo --message hi -I node1,node2,node3,node4'], {
        XDG_STATE_HOME: state,
      });
      assert.equal(run.code, 0, show(run));
      assert.match(run.stderr, /scheduler {2}127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+ \(replicas; the CLI uses the first, agents know them all\)/);
      assert.match(run.stdout, /^ +Successful: 4$/m, show(run));
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });

  it('refuses a replica count out of range, with one line, starting nothing', async () => {
    const run = await runCli(['dev', '--schedulers', '9', '--run', 'tasks list']);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /--schedulers expects a number from 1 to 5, got '9'/);
    assert.doesNotMatch(run.stderr, /Starting redis-server|\n\s+at /);
  });
});
