import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { batonScript } from '../../lib/package-root';
import { runCli, type CliRun } from '../helpers/cli';
import { cliEnvironmentpath } from '../helpers/cli-environment';
import { waitFor } from '../helpers/wait';

const show = (r: CliRun) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

/** A `baton dev` process of the test: what it printed, and how to stop it. */
interface DevProcess {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  /** The BATON_* variables of its `export` lines. */
  exports: () => Record<string, string>;
}

const state = mkdtempSync(join(tmpdir(), 'baton-dev-records-'));
const environmentpath = cliEnvironmentpath();
const started: DevProcess[] = [];
after(() => {
  for (const d of started) if (d.child.exitCode === null && d.child.signalCode === null) process.kill(-d.child.pid!, 'SIGKILL');
  rmSync(state, { recursive: true, force: true });
});

/** Starts `baton dev --agents 1` in its own process group and waits until it is ready. */
async function startDev(): Promise<DevProcess> {
  const child = spawn(process.execPath, [batonScript(), 'dev', '--agents', '1', '--environmentpath', environmentpath], {
    env: { ...process.env, XDG_STATE_HOME: state, XDG_CONFIG_HOME: '/nonexistent/baton-test' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const dev: DevProcess = {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    exports: () => Object.fromEntries([...out.matchAll(/^export (BATON_\w+)=(\S+)$/gm)].map((m) => [m[1], m[2]])),
  };
  started.push(dev);
  await waitFor('baton dev to be ready', () => err.includes('Press Ctrl-C') || child.exitCode !== null, 90_000, 100);
  assert.ok(err.includes('Press Ctrl-C'), err);
  return dev;
}

async function stopDev(dev: DevProcess): Promise<void> {
  dev.child.kill('SIGINT');
  assert.equal(await dev.exited, 0, dev.stderr());
}

describe('baton dev records: one per stack, used as a whole', () => {
  it('keeps two concurrent stacks apart: each prints its export lines, the newest is used, stopping one leaves the other', async () => {
    const a = await startDev();
    const b = await startDev();
    assert.match(
      a.stdout(),
      /^export BATON_SCHEDULER=127\.0\.0\.1:\d+\nexport BATON_METADATA=127\.0\.0\.1:\d+\nexport BATON_RESULTS=127\.0\.0\.1:\d+\nunset BATON_TLS_CA\nunset BATON_TLS_CERT\nunset BATON_TLS_KEY\n$/,
    );
    assert.notEqual(a.exports().BATON_SCHEDULER, b.exports().BATON_SCHEDULER);
    assert.deepEqual(readdirSync(join(state, 'baton', 'dev')).sort(), [`${a.child.pid}.json`, `${b.child.pid}.json`].sort());
    const env = { XDG_STATE_HOME: state };

    const picked = await runCli(['config', 'show'], env);
    assert.equal(picked.code, 0, show(picked));
    assert.match(picked.stdout, new RegExp(`^baton dev: +stack of pid ${b.child.pid}, started .*\\n.*the newest of 2 running stacks`, 'm'));
    assert.match(picked.stdout, new RegExp(`^ {2}scheduler +${b.exports().BATON_SCHEDULER} +running 'baton dev' \\(pid ${b.child.pid}, `, 'm'));

    // The export lines pin a shell to stack a; no record is consulted then.
    const pinned = await runCli(['config', 'show'], { ...env, ...a.exports() });
    assert.match(pinned.stdout, new RegExp(`^ {2}scheduler +${a.exports().BATON_SCHEDULER} +environment variable BATON_SCHEDULER$`, 'm'));
    assert.doesNotMatch(pinned.stdout, /^baton dev:/m);
    const ranOnA = await runCli(['tasks', 'run', 'demo::echo', '--message', 'on-a', '--json'], { ...env, ...a.exports() });
    assert.equal(ranOnA.code, 0, show(ranOnA));

    // One address given elsewhere: the stack's record is not mixed in, the missing one is named.
    const mixed = await runCli(['tasks', 'run', 'demo::echo', '--message', 'x'], { ...env, BATON_SCHEDULER: a.exports().BATON_SCHEDULER });
    assert.equal(mixed.code, 2, show(mixed));
    assert.match(mixed.stderr, /^baton: no metadata address: pass --metadata HOST:PORT/);

    await stopDev(b);
    assert.equal(existsSync(join(state, 'baton', 'dev', `${b.child.pid}.json`)), false, 'b removed its own record');
    assert.equal(existsSync(join(state, 'baton', 'dev', `${a.child.pid}.json`)), true, "and left a's");
    const now = await runCli(['config', 'show'], env);
    assert.match(now.stdout, new RegExp(`^baton dev: +stack of pid ${a.child.pid}, `, 'm'));
    assert.doesNotMatch(now.stdout, /newest of/);
    const runs = await runCli(['tasks', 'runs', '--json'], env);
    assert.equal(runs.code, 0, show(runs));
    assert.ok((JSON.parse(runs.stdout) as Array<{ taskid: string }>).length >= 1, 'plain commands reach stack a, which holds the run made there');

    if (process.getuid?.() === 0) {
      // The stack's state directory lets a task run as another user reach its spool.
      const nobody = await runCli(['tasks', 'run', 'demo::echo', '--message', 'as-nobody', '--run-as', 'nobody', '--json'], env);
      assert.equal(nobody.code, 0, show(nobody));
    }
    await stopDev(a);
    assert.deepEqual(readdirSync(join(state, 'baton', 'dev')), []);
    const none = await runCli(['tasks', 'list'], env);
    assert.equal(none.code, 2, show(none));
    assert.match(none.stderr, /^baton: no metadata address: .*or start a local stack with 'baton dev'\n$/);
  });
});
