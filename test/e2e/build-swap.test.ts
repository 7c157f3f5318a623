import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { setPriority, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { packageRoot } from '../../lib/package-root';
import type { StatusDocument } from '../../cli/status-document';
import { cliEnvironmentpath } from '../helpers/cli-environment';
import { waitFor } from '../helpers/wait';

/**
 * `npm run build` while `baton dev` runs from the same checkout: the build writes into a
 * directory of its own and swaps it in for dist/, so the stack keeps serving runs, and a
 * `baton` started during the build or after it finds a whole tree. The checkout is a copy of
 * this repository (sources and current build; node_modules linked), so the build under test
 * replaces the copy's dist/ and not the one these tests run from.
 */

const root = packageRoot();
const scratch = mkdtempSync(join(tmpdir(), 'baton-build-swap-'));
const copy = join(scratch, 'checkout');
const groups: ChildProcess[] = [];
after(() => {
  for (const child of groups) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // the group ended meanwhile
      }
    }
  }
  rmSync(scratch, { recursive: true, force: true });
});

/** A process of the test in its own process group, with what it printed so far. */
function start(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd = copy,
): { child: ChildProcess; stdout: () => string; output: () => string; exited: Promise<number | null> } {
  const child = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  groups.push(child);
  let stdout = '';
  let output = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    output += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, stdout: () => stdout, output: () => output, exited };
}

/** Copies the repository's sources and its built dist/ into `copy`, linking node_modules. */
function copyCheckout(): void {
  mkdirSync(copy);
  for (const name of readdirSync(root)) {
    if (name.startsWith('.') || name.startsWith('dist') || name === 'node_modules') continue;
    cpSync(join(root, name), join(copy, name), { recursive: true });
  }
  cpSync(join(root, 'dist'), join(copy, 'dist'), { recursive: true });
  symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'));
}

describe('npm run build beside a running stack', () => {
  it('replaces dist/ while baton dev keeps serving runs, started during the build and after it', { timeout: 540_000 }, async () => {
    copyCheckout();
    const cliEnv = {
      NO_COLOR: '1',
      XDG_STATE_HOME: join(scratch, 'state'),
      XDG_CONFIG_HOME: '/nonexistent/baton-test',
      XDG_CACHE_HOME: join(scratch, 'cache'),
    };
    const baton = join(copy, 'bin', 'baton');
    const dev = start(process.execPath, [baton, 'dev', '--agents', '1', '--environmentpath', cliEnvironmentpath()], cliEnv);
    await waitFor('baton dev to be ready', () => dev.output().includes('Press Ctrl-C') || dev.child.exitCode !== null, 120_000, 100);
    assert.ok(dev.output().includes('Press Ctrl-C'), dev.output());
    const exports = Object.fromEntries([...dev.stdout().matchAll(/^export (BATON_\w+)=(\S+)$/gm)].map((m) => [m[1], m[2]]));
    assert.ok(exports.BATON_SCHEDULER, dev.output());

    const runEcho = async (message: string): Promise<void> => {
      const run = start(process.execPath, [baton, 'tasks', 'run', 'demo::echo', '--message', message, '--json'], { ...cliEnv, ...exports });
      const code = await run.exited;
      assert.equal(code, 0, `run ${message}: exit ${code}\n${run.output()}`);
      const doc = JSON.parse(run.stdout()) as StatusDocument;
      assert.equal(doc.summary.success, true, run.output());
    };
    await runEcho('before-build');

    const oldDist = statSync(join(copy, 'dist')).ino;
    writeFileSync(join(copy, 'dist', 'old-build-marker'), '');
    const build = start(process.execPath, [join(copy, 'scripts', 'build.mjs')], {
      PATH: `${join(copy, 'node_modules', '.bin')}${delimiter}${process.env.PATH ?? ''}`,
    });
    setPriority(build.child.pid!, 10);
    let during = 0;
    while (build.child.exitCode === null) {
      await runEcho(`during-build-${during}`);
      during++;
    }
    assert.equal(await build.exited, 0, build.output());
    assert.ok(during >= 1, 'at least one run was made while the build ran');

    assert.notEqual(statSync(join(copy, 'dist')).ino, oldDist, 'dist/ is a new directory');
    assert.equal(existsSync(join(copy, 'dist', 'old-build-marker')), false, 'nothing of the old build is left in it');
    assert.deepEqual(
      readdirSync(copy).filter((n) => n.startsWith('dist')),
      ['dist'],
      'no half-built or old tree is left beside it',
    );

    // The new CLI against the stack started from the old build, which also stops cleanly.
    await runEcho('after-build');
    assert.equal(dev.child.exitCode, null, `baton dev ended during the build:\n${dev.output()}`);
    dev.child.kill('SIGINT');
    assert.equal(await dev.exited, 0, dev.output());
  });
});
