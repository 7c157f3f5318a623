// Runs every compiled test file (dist/**/*.test.js) with node's test runner. Node 20's
// `node --test` takes no globs, so this script finds the files. Extra arguments are passed on
// (for example a file filter: `npm test -- agent`).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function find(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) find(full, out);
    else if (name.endsWith('.test.js')) out.push(full);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = find('dist')
  .filter((f) => !f.startsWith(join('dist', 'node_modules')))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error('no test files found under dist/; run `npm run build` first');
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--test', '--test-reporter=spec', '--test-timeout=120000', ...files], {
  stdio: 'inherit',
  env: { ...process.env, OTEL_SDK_DISABLED: 'true' },
});
process.exit(result.status ?? 1);
