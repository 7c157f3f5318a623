// `npm run build`: generates the proto code, compiles into dist.next/, writes the reflection
// descriptor sets there, bundles the CLI into dist.next/cli/baton.js, then swaps dist.next/ in for dist/ with two renames. A running stack
// (`baton dev`, a test run) keeps working while the build runs, and any process it starts
// afterwards finds a whole tree, old or new, never a half-written or missing one.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
const next = join(root, 'dist.next');
const dist = join(root, 'dist');
const old = join(root, `dist.old-${process.pid}`);
const run = (command, args, env = {}) => execFileSync(command, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });

rmSync(next, { recursive: true, force: true });
run(bin('buf'), ['generate']);
run(bin('tsc'), ['-p', 'tsconfig.json', '--outDir', next]);
// Redis scripts are `.lua` files read next to the module that loads them (lib/lua-script.ts).
const copyLua = (dir) => {
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const rel = join(dir, entry.name);
    if (entry.isDirectory()) copyLua(rel);
    else if (entry.name.endsWith('.lua')) {
      mkdirSync(join(next, dir), { recursive: true });
      copyFileSync(join(root, rel), join(next, rel));
    }
  }
};
for (const dir of ['lib', 'services', 'agent', 'cli']) copyLua(dir);
run(process.execPath, [join(root, 'scripts', 'build-descriptors.mjs')], { BATON_BUILD_OUT: next });
// Node modules that a bundled package loads as it starts but uses only for what the CLI never
// does: commander's child_process (subcommands in files of their own) and grpc-js's zlib
// (compressed messages). Each reaches that package as an object that loads the module on first
// use: loading them was a noticeable part of every command's start-up.
const LAZY_BUILTINS = [
  { packages: /[\\/]node_modules[\\/]commander[\\/]/, modules: /^node:child_process$/ },
  { packages: /[\\/]node_modules[\\/]@grpc[\\/]grpc-js[\\/]/, modules: /^zlib$/ },
];
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    for (const { packages, modules } of LAZY_BUILTINS) {
      b.onResolve({ filter: modules }, (args) => (packages.test(args.importer) ? { path: args.path, namespace: 'lazy-builtin' } : undefined));
    }
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (args) => ({
      contents: `let real;
const load = () => (real ??= require(${JSON.stringify(args.path)}));
module.exports = new Proxy({}, {
  get: (_, key) => load()[key],
  has: (_, key) => key in load(),
  ownKeys: () => Reflect.ownKeys(load()),
  getOwnPropertyDescriptor: (_, key) => {
    const d = Reflect.getOwnPropertyDescriptor(load(), key);
    return d && { ...d, configurable: true };
  },
});`,
      loader: 'js',
    }));
  },
};
// The installed `baton` command loads the CLI as this one file (cli/start.ts): reading and
// compiling a few hundred modules was most of a short command's start-up. Syntax and
// whitespace are minified but names are kept, so a stack trace still names functions, and the
// source map leads back to the TypeScript under `node --enable-source-maps`. lib/tracing (and
// OpenTelemetry with it) stays out: with tracing on, the compiled modules run instead.
// @grpc/proto-loader is only for grpc-js's channelz and ORCA services, which the CLI never serves;
// yaml (a config or --input file), ajv and the certificate packages (pki, dev --tls) are loaded
// from node_modules by the few commands that use them, and ioredis only to start a Redis Cluster,
// which no command does: every command reads the bundle whole.
// A checkout whose node_modules predates esbuild still builds, unbundled (cli/start.ts then
// loads the compiled modules), and says how to get the faster start-up.
const esbuild = await import('esbuild').catch(() => undefined);
if (!esbuild) console.warn('build: esbuild is not installed (run npm install); the CLI is left unbundled, which starts slower');
await esbuild?.build({
  entryPoints: [join(root, 'cli', 'main.ts')],
  outfile: join(next, 'cli', 'baton.js'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  charset: 'ascii',
  minifySyntax: true,
  minifyWhitespace: true,
  sourcemap: true,
  logLevel: 'warning',
  external: ['@grpc/proto-loader', 'yaml', 'ajv', '@peculiar/*', 'ioredis'],
  plugins: [
    { name: 'tracing-outside', setup: (b) => b.onResolve({ filter: /\/lib\/tracing$/ }, () => ({ path: '../lib/tracing.js', external: true })) },
    lazyBuiltins,
  ],
});
if (existsSync(dist)) renameSync(dist, old);
renameSync(next, dist);
rmSync(old, { recursive: true, force: true });
