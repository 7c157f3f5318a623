import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../lib/package-root';

/**
 * scripts/api-breaking.sh, the CI step that runs `buf breaking`, passes an
 * additive change and fails one that breaks clients, in a throwaway clone of this repository.
 */

const root = packageRoot();
/** Most time one git or buf run may take, in ms. */
const STEP_TIMEOUT_MS = 60_000;
/** The file edited in the clone, and a line every edit is anchored to. */
const RUN_PROTO = join('proto', 'baton', 'v1', 'run.proto');
const RUN_MESSAGE = 'message Run {\n';

interface Exit {
  code: number;
  output: string;
}

function run(cwd: string, file: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Exit> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, timeout: STEP_TIMEOUT_MS, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, output: stdout + stderr });
    });
  });
}

describe('scripts/api-breaking.sh', () => {
  let clone: string;
  let original: string;
  const git = (...args: string[]) => run(clone, 'git', ['-c', 'user.name=api-test', '-c', 'user.email=api-test@example.invalid', ...args]);
  const check = (env: NodeJS.ProcessEnv = {}) => run(clone, 'bash', ['scripts/api-breaking.sh'], env);
  const edit = (change: (text: string) => string) => writeFileSync(join(clone, RUN_PROTO), change(original));

  before(async () => {
    clone = join(mkdtempSync(join(tmpdir(), 'baton-api-')), 'repo');
    const cloned = await run(root, 'git', ['clone', '--quiet', '--branch', 'main', root, clone]);
    assert.equal(cloned.code, 0, cloned.output);
    symlinkSync(join(root, 'node_modules'), join(clone, 'node_modules'));
    // The script as it is here, committed or not.
    copyFileSync(join(root, 'scripts', 'api-breaking.sh'), join(clone, 'scripts', 'api-breaking.sh'));
    original = readFileSync(join(clone, RUN_PROTO), 'utf8');
    assert.ok(original.includes(RUN_MESSAGE), `${RUN_PROTO} has no '${RUN_MESSAGE.trim()}'`);
  });
  after(() => rmSync(join(clone, '..'), { recursive: true, force: true }));

  it('passes a new field', async () => {
    edit((t) => t.replace(RUN_MESSAGE, `${RUN_MESSAGE}  // Added by the compatibility test.\n  string compat_probe = 999;\n`));
    const out = await check({ BATON_API_BASE: 'HEAD' });
    assert.equal(out.code, 0, out.output);
  });

  it('fails a renamed field, naming it', async () => {
    edit((t) =>
      t
        .replace(RUN_MESSAGE, `${RUN_MESSAGE}  // Added by the compatibility test.\n  string compat_probe = 999;\n`)
        .replace('string caller = 4;', 'string caller_name = 4;'),
    );
    const out = await check({ BATON_API_BASE: 'HEAD' });
    assert.notEqual(out.code, 0, out.output);
    assert.match(out.output, /caller/);
  });

  it('on a branch, compares with where it left main', async () => {
    edit((t) => t.replace('string caller = 4;', 'int64 caller = 4;'));
    assert.equal((await git('checkout', '--quiet', '-b', 'breaks-api')).code, 0);
    const committed = await git('commit', '--quiet', '-am', 'change a field type');
    assert.equal(committed.code, 0, committed.output);
    writeFileSync(join(clone, 'NOTES'), 'a later commit\n');
    assert.equal((await git('add', 'NOTES')).code, 0);
    assert.equal((await git('commit', '--quiet', '-m', 'a later commit')).code, 0);
    // The break is two commits back and the tree is clean: only the merge-base with main finds it.
    const out = await check();
    assert.notEqual(out.code, 0, out.output);
    assert.match(out.output, /compared with [0-9a-f]{40}/);
    assert.match(out.output, /caller/);
  });
});
