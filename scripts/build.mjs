// `npm run build`: generates the proto code, compiles into dist.next/, writes the reflection
// descriptor sets there, then swaps dist.next/ in for dist/ with two renames. A running stack
// (`baton dev`, a test run) keeps working while the build runs, and any process it starts
// afterwards finds a whole tree, old or new, never a half-written or missing one.
import { execFileSync } from 'node:child_process';
import { existsSync, renameSync, rmSync } from 'node:fs';
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
run(process.execPath, [join(root, 'scripts', 'build-descriptors.mjs')], { BATON_BUILD_OUT: next });
if (existsSync(dist)) renameSync(dist, old);
renameSync(next, dist);
rmSync(old, { recursive: true, force: true });
