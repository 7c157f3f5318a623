import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire, wrap } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';
import { tracingConfigured } from '../lib/tracing-config';
import { commandSpanName } from './command-words';

/**
 * How the installed `baton` command (bin/baton) starts. `npm run build` bundles the CLI into
 * dist/cli/baton.js (scripts/build.mjs): one file to read instead of a few hundred modules.
 * Compiling it is then most of a short command's start-up, so V8's compiled code is kept in
 * the user's cache directory and reused while the bundle and Node stay the same. Node 20 has
 * no compile cache of its own (module.enableCompileCache came with 22.1), and V8 compiles a
 * function only when it first runs: the cache is written again when a kind of command runs
 * that it did not cover yet (`baton tasks run` compiles code `baton --version` never does), so
 * after a few commands nothing is written any more.
 *
 * The compiled modules beside this file run instead when tracing is on (its instrumentation
 * patches @grpc/grpc-js as it loads from node_modules, which a bundled copy escapes) and when
 * the bundle is missing; with Node's source maps on, the bundle loads plainly so stack traces
 * name the TypeScript sources through its source map.
 */
export function start(): void {
  const bundle = join(__dirname, 'baton.js');
  /* eslint-disable @typescript-eslint/no-require-imports */
  if (tracingConfigured()) return (require('./main') as typeof import('./main')).runCli();
  if (process.sourceMapsEnabled) return (require(bundle) as typeof import('./main')).runCli();
  let source: string;
  try {
    // The bundle is ASCII (esbuild escapes the rest), so latin1 reads it without decoding UTF-8.
    source = readFileSync(bundle, 'latin1');
  } catch {
    return (require('./main') as typeof import('./main')).runCli();
  }
  /* eslint-enable @typescript-eslint/no-require-imports */
  const cache = new CodeCache(bundle, commandSpanName(process.argv.slice(2)));
  const script = new Script(wrap(source), { filename: bundle, cachedData: cache.data });
  const module = { exports: {} as typeof import('./main') };
  (script.runInThisContext() as ModuleFunction).call(module.exports, module.exports, createRequire(bundle), module, bundle, dirname(bundle));
  if (cache.needsWrite(script.cachedDataRejected === true)) process.once('exit', () => cache.write(script.createCachedData()));
  module.exports.runCli();
}

/** A CommonJS module's wrapper function, as `Module.wrap` makes it. */
type ModuleFunction = (this: unknown, exports: unknown, require: NodeJS.Require, module: unknown, filename: string, dirname: string) => void;

/**
 * V8's code for the bundle, in `$XDG_CACHE_HOME/baton` (else ~/.cache/baton), one file per
 * installation whose name holds the bundle's identity and Node's version: a rebuilt bundle or
 * another Node never meets old code (V8 also refuses code made for other sources or flags).
 * The file starts with the commands it covers. Anything that goes wrong costs only speed.
 */
class CodeCache {
  readonly data: Buffer | undefined;
  private readonly covered: string[] = [];
  private readonly dir: string;
  private readonly prefix: string;
  private readonly file: string;

  constructor(
    bundle: string,
    private readonly command: string,
  ) {
    this.dir = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'baton');
    this.prefix = `cli-${createHash('sha256').update(bundle).digest('hex').slice(0, 16)}-`;
    let identity = 'none';
    try {
      const s = statSync(bundle);
      identity = `${s.size}-${Math.round(s.mtimeMs)}-${s.ino}`;
    } catch {
      // unreadable: no file of this name will ever match, and the cache is written anew
    }
    this.file = join(this.dir, `${this.prefix}${identity}-${process.version}-${process.arch}.cache`);
    try {
      const raw = readFileSync(this.file);
      const length = raw.readUInt32LE(0);
      this.covered = JSON.parse(raw.subarray(4, 4 + length).toString('utf8')) as string[];
      this.data = raw.subarray(4 + length);
    } catch {
      this.data = undefined;
    }
  }

  /** Whether this run should write the cache at exit: none yet, refused by V8, or a new kind of command. */
  needsWrite(rejected: boolean): boolean {
    return this.data === undefined || rejected || !this.covered.includes(this.command);
  }

  /** Writes `code` (which also holds what was read from the cache) atomically; removes this installation's stale files. */
  write(code: Buffer): void {
    try {
      const covered = Buffer.from(JSON.stringify([...new Set([...this.covered, this.command])]), 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32LE(covered.length, 0);
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const temp = `${this.file}.${process.pid}`;
      writeFileSync(temp, Buffer.concat([length, covered, code]), { mode: 0o600 });
      renameSync(temp, this.file);
      const mine = this.file.slice(this.dir.length + 1);
      for (const name of readdirSync(this.dir)) {
        if (name.startsWith(this.prefix) && name.endsWith('.cache') && name !== mine) rmSync(join(this.dir, name), { force: true });
      }
    } catch {
      // a read-only or missing home: the next run compiles again
    }
  }
}
