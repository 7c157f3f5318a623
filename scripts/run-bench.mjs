// Runs compiled benchmarks: every dist/bench/*.js, or the files given (a name such as
// `metadata-bench` or a path). Builds nothing: run `npm run build` first. Each benchmark runs
// in its own node process, one after the other, so they do not compete for the CPU.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = join('dist', 'bench');
const all = existsSync(dir)
  ? readdirSync(dir)
      .filter((f) => f.endsWith('.js'))
      .sort()
      .map((f) => join(dir, f))
  : [];
const wanted = process.argv.slice(2);
const files = wanted.length === 0 ? all : wanted.map((w) => (existsSync(w) ? w : join(dir, w.endsWith('.js') ? w : `${w}.js`)));
if (files.length === 0) {
  console.error('no benchmarks found under dist/bench/; run `npm run build` first');
  process.exit(1);
}
let failed = 0;
for (const file of files) {
  if (!existsSync(file)) {
    console.error(`benchmark ${file} not found; expected one of: ${all.join(', ') || '(none built)'}`);
    failed++;
    continue;
  }
  console.log(`== ${file}`);
  const r = spawnSync(process.execPath, [file], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
