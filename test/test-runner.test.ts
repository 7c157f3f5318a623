import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../lib/package-root';
import { waitFor } from './helpers/wait';

/** Whether `pid` is a live process (a zombie, which holds nothing and waits to be reaped, is not). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return false;
  }
}

const scratch = mkdtempSync(join(tmpdir(), 'baton-test-runner-'));
const started: number[] = [];
after(() => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone, as it should be
    }
  }
  rmSync(scratch, { recursive: true, force: true });
});

describe('scripts/run-tests.mjs', () => {
  it('ends a test file that runs past its time limit with every process it started, in its group or not', async () => {
    // The runner looks for dist/**/*.test.js under its working directory.
    mkdirSync(join(scratch, 'dist'));
    copyFileSync(join(packageRoot(), 'test', 'fixtures', 'test-runner', 'hangs.js'), join(scratch, 'dist', 'hangs.test.js'));
    const pidsFile = join(scratch, 'pids.json');
    // Without the variable by which node's test runner tells a file it runs under another.
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const runner = spawn(process.execPath, [join(packageRoot(), 'scripts', 'run-tests.mjs')], {
      cwd: scratch,
      env: { ...env, BATON_TEST_FILE_TIMEOUT_S: '3', HANG_PIDS_FILE: pidsFile },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    started.push(runner.pid!);
    let output = '';
    runner.stdout.on('data', (d: Buffer) => (output += d.toString()));
    runner.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => runner.once('close', (code) => resolve(code)));

    const pids = await waitFor(
      'the hanging test file to start its processes',
      () => {
        if (runner.exitCode !== null) throw new Error(`the runner exited ${runner.exitCode} first:\n${output}`);
        return existsSync(pidsFile) && (JSON.parse(readFileSync(pidsFile, 'utf8')) as number[]);
      },
      60_000,
    );
    started.push(...pids);
    assert.ok(pids.every(alive), 'the hanging file and both its processes run before the limit');

    const code = await exited;
    assert.equal(code, 1, output);
    assert.match(output, /run-tests: dist\/hangs\.test\.js ran past 3 s; ending it and everything it started/);
    assert.match(output, /dist\/hangs\.test\.js: timed out/);
    // The process in a session of its own left the group; the runner finds it by its environment.
    assert.match(output, new RegExp(`run-tests: dist/hangs\\.test\\.js: ending ${pids[2]} \\(`));
    // Killed processes are reaped by their parents or init a moment later.
    await waitFor('every process of the timed-out file to be gone', () => pids.every((pid) => !alive(pid)), 5_000);
  });

  it('runs files side by side, each printed whole, and ends after one file only what that file started', async () => {
    const dir = join(scratch, 'side-by-side');
    mkdirSync(join(dir, 'dist'), { recursive: true });
    for (const name of ['lingers', 'quick'])
      copyFileSync(join(packageRoot(), 'test', 'fixtures', 'test-runner', `${name}.js`), join(dir, 'dist', `${name}.test.js`));
    const otherDone = join(dir, 'quick-done');
    const env: NodeJS.ProcessEnv = { ...process.env, OTHER_DONE_FILE: otherDone };
    delete env.NODE_TEST_CONTEXT;
    const runner = spawn(process.execPath, [join(packageRoot(), 'scripts', 'run-tests.mjs'), '--jobs', '2'], {
      cwd: dir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    started.push(runner.pid!);
    let output = '';
    const onOutput = (d: Buffer) => {
      output += d.toString();
      // The runner prints a file's outcome after it has cleaned up after it.
      if (/run-tests: dist\/quick\.test\.js: passed/.test(output) && !existsSync(otherDone)) writeFileSync(otherDone, '');
    };
    runner.stdout.on('data', onOutput);
    runner.stderr.on('data', onOutput);
    const code = await new Promise<number | null>((resolve) => runner.once('close', (c) => resolve(c)));
    assert.equal(code, 0, output);
    assert.match(output, /run-tests: all 2 test file runs passed \(0 of them on a Redis Cluster, 2 at a time\)/);
    // Each file's output follows the line naming it, not mixed with the other's.
    const blocks = output.split(/\nrun-tests: /).slice(1);
    const lingers = blocks.find((b) => b.startsWith('dist/lingers.test.js: passed'));
    const quick = blocks.find((b) => b.startsWith('dist/quick.test.js: passed'));
    assert.ok(lingers && quick, output);
    assert.match(lingers, /keeps its own process while another file ends/);
    assert.doesNotMatch(lingers, /ends at once/);
    assert.match(quick, /ends at once/);
    assert.doesNotMatch(quick, /keeps its own process/);
    // The quick file was over before the lingering one: they ran at the same time.
    assert.ok(output.indexOf('dist/quick.test.js: passed') < output.indexOf('dist/lingers.test.js: passed'), output);
  });
});
