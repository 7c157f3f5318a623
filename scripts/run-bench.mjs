// Runs compiled benchmarks: every dist/bench/*.js, or the files given (a name such as
// `metadata-bench` or a path). Builds nothing: run `npm run build` first. Each benchmark runs
// in its own node process, one after the other, so they do not compete for the CPU, in a
// process group of its own with a marker in its environment: when it ends, or this runner is
// interrupted, whatever it started (a stack, agents, ansible) is ended with it.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { MARKER_NAME, reap } from './process-groups.mjs';

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
const marker = `bench-${randomBytes(8).toString('hex')}`;
let current;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    console.error(`run-bench: ${signal}; ending the running benchmark and everything it started`);
    void (current ? reap(current.pid, marker, 'run-bench') : Promise.resolve()).then(() => process.exit(130));
  });
}

/** Runs one benchmark to its end, then ends what it left; resolves with its exit code. */
function runOne(file) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { stdio: 'inherit', detached: true, env: { ...process.env, [MARKER_NAME]: marker } });
    current = child;
    child.once('exit', (code, signal) => {
      void reap(child.pid, marker, 'run-bench').then(() => {
        current = undefined;
        resolve(signal ? 1 : (code ?? 1));
      });
    });
  });
}

let failed = 0;
for (const file of files) {
  if (!existsSync(file)) {
    console.error(`benchmark ${file} not found; expected one of: ${all.join(', ') || '(none built)'}`);
    failed++;
    continue;
  }
  console.log(`== ${file}`);
  if ((await runOne(file)) !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
