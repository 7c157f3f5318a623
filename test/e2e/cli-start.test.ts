import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliRun } from '../helpers/cli';

const show = (r: CliRun) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

const cacheHome = mkdtempSync(join(tmpdir(), 'baton-start-cache-'));
after(() => rmSync(cacheHome, { recursive: true, force: true }));
const cacheDir = join(cacheHome, 'baton');

/** The cache files of the installed command, with the commands each says it covers. */
function cacheFiles(): Array<{ name: string; covered: string[]; size: number }> {
  let names: string[];
  try {
    names = readdirSync(cacheDir);
  } catch {
    return [];
  }
  return names.map((name) => {
    const raw = readFileSync(join(cacheDir, name));
    const length = raw.readUInt32LE(0);
    return { name, covered: JSON.parse(raw.subarray(4, 4 + length).toString('utf8')) as string[], size: raw.length };
  });
}

/** `baton` as installed (bin/baton, the bundle), with its code cache in this test's directory. */
const baton = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(args, { XDG_CACHE_HOME: cacheHome, ...env });

describe('the installed command starts from the bundle and its code cache', () => {
  it('writes the cache once per kind of command, then reuses it with the same output', async () => {
    const first = await baton(['--version']);
    assert.equal(first.code, 0, show(first));
    assert.equal(first.stdout, '0.1.0\n');
    let files = cacheFiles();
    assert.equal(files.length, 1, `one cache file: ${files.map((f) => f.name).join(', ')}`);
    assert.deepEqual(files[0].covered, ['baton']);

    const again = await baton(['--version']);
    assert.equal(again.stdout, first.stdout);
    assert.deepEqual(cacheFiles(), files, 'a covered command writes nothing');

    const help = await baton(['tasks', 'run', '--help']);
    assert.equal(help.code, 0, show(help));
    assert.match(help.stdout, /^Usage: baton tasks run \[options\] <task>/);
    files = cacheFiles();
    assert.equal(files.length, 1);
    assert.deepEqual(files[0].covered, ['baton', 'baton tasks run'], 'a new kind of command adds its compiled code');
    const helpAgain = await baton(['tasks', 'run', '--help']);
    assert.equal(helpAgain.stdout, help.stdout, 'the same help from the cache');
  });

  it('runs correctly from a damaged cache and writes it anew', async () => {
    const [file] = cacheFiles();
    const path = join(cacheDir, file.name);
    const header = readFileSync(path).subarray(0, 4 + readFileSync(path).readUInt32LE(0));
    writeFileSync(path, Buffer.concat([header, Buffer.alloc(5000, 0x5a)]));
    const damaged = await baton(['--version']);
    assert.equal(damaged.code, 0, show(damaged));
    assert.equal(damaged.stdout, '0.1.0\n');
    assert.equal(damaged.stderr, '');
    assert.ok(cacheFiles()[0].size > 5000 + header.length, 'V8 refused the damaged code and the cache was written again');

    writeFileSync(path, 'x');
    const garbage = await baton(['--version']);
    assert.equal(garbage.stdout, '0.1.0\n', show(garbage));
    assert.deepEqual(cacheFiles()[0].covered, ['baton']);
  });

  it('runs the compiled modules, without the bundle or its cache, when tracing is on', async () => {
    rmSync(cacheDir, { recursive: true, force: true });
    // Nothing listens there: the CLI's exporter gives up quietly, as with an absent collector.
    const traced = await baton(['--version'], { OTEL_SDK_DISABLED: '', OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' });
    assert.equal(traced.code, 0, show(traced));
    assert.equal(traced.stdout, '0.1.0\n');
    assert.deepEqual(cacheFiles(), []);
  });

  it('starts without a writable cache directory', async () => {
    const r = await baton(['--version'], { XDG_CACHE_HOME: '/nonexistent/baton-test' });
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stdout, '0.1.0\n');
    assert.equal(r.stderr, '');
  });
});
