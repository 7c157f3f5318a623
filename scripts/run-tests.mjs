// Runs every compiled test file (dist/**/*.test.js) with node's test runner, each in a process
// group of its own, so that nothing a test file started outlives it: when the file ends, passes,
// fails or runs past its time limit, its whole group is ended, and so is any process still
// carrying the file's marker in its environment (task wrappers that agents start in sessions of
// their own leave the group on purpose). Extra arguments are file filters (for example
// `npm test -- agent`).
//
// Files run BATON_TEST_JOBS at a time (default 3, `--jobs N`): most of a file's time is spent
// waiting on leases, heartbeats and processes starting, so three files keep two cores busy
// (about one and a half of them over the suite) without starving one another. Each
// file's output is held and printed whole when it ends, so outputs never interleave. The files
// of SOLO measure how long things take relative to each other and run with nothing beside them.
//
// Two passes: every selected file on one redis-server, then the selected files of CLUSTER_PASS
// again with BATON_TEST_REDIS=cluster, on which the test helpers start a 3-master Redis Cluster
// instead (test/helpers/redis.ts). `--redis server` or `--redis cluster` runs one pass only
// (with `cluster`, every selected file, listed or not: to try one on a cluster).
//
// Environment: BATON_TEST_FILE_TIMEOUT_S (default 600) bounds one file. Under `node --test` the
// file itself is a test that --test-timeout bounds (Node 20), so node's bound is set past ours:
// a file of many slow tests on a busy machine is judged by the file's bound, not ended at a
// per-test figure, and ours ends the file's whole process group. Tests that can hang carry
// their own, shorter, timeouts.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MARKER_NAME, reap, signalGroup, STOP_GRACE_MS } from './process-groups.mjs';

const FILE_TIMEOUT_S = Number(process.env.BATON_TEST_FILE_TIMEOUT_S ?? 600);
/** Node's own bound of a file, past ours, so that ours (which ends the whole group) comes first. */
const NODE_FILE_TIMEOUT_MS = (FILE_TIMEOUT_S + 60) * 1000;
/**
 * Files that compare timings within themselves (a run alone against the same run under attack):
 * another file beside them would weigh on one side of the comparison only.
 */
const SOLO = ['dist/test/e2e/bad-input-adversary.test.js'];
/**
 * The files run a second time on a Redis Cluster (path substrings): every part whose Redis keys
 * are laid out for a cluster and whose tests pass on one. A file goes in once it does.
 */
const CLUSTER_PASS = [
  'dist/services/results/',
  'dist/services/scheduler/node-index.test',
  'dist/services/scheduler/discovery',
  'dist/services/scheduler/replica-lease.test',
  'dist/services/scheduler/node-names.test',
  'dist/test/e2e/discovery.test.js',
  'dist/test/e2e/runs.test.js',
  'dist/test/e2e/faults.test.js',
];
/** This run's id; each file's marker is the id and the file's number. */
const runId = randomBytes(8).toString('hex');

function find(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) find(full, out);
    else if (name.endsWith('.test.js')) out.push(full);
  }
  return out;
}

/** The files running now: child and marker. */
const running = new Set();
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    console.error(`run-tests: ${signal}; ending the running test files and everything they started`);
    void Promise.all([...running].map((r) => reap(r.child.pid, r.marker, 'run-tests'))).then(() => process.exit(130));
  });
}

/**
 * Runs one test file in its own process group (on a Redis Cluster when `redis` is 'cluster');
 * resolves with how it ended and what it printed.
 */
function runFile(file, redis, number) {
  return new Promise((resolve) => {
    const marker = `${runId}.${number}`;
    const child = spawn(process.execPath, ['--test', '--test-reporter=spec', `--test-timeout=${NODE_FILE_TIMEOUT_MS}`, file], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      env: { ...process.env, OTEL_SDK_DISABLED: 'true', BATON_TEST_REDIS: redis, [MARKER_NAME]: marker },
    });
    const entry = { child, marker };
    running.add(entry);
    const output = [];
    child.stdout.on('data', (d) => output.push(d));
    child.stderr.on('data', (d) => output.push(d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      output.push(Buffer.from(`run-tests: ${file} ran past ${FILE_TIMEOUT_S} s; ending it and everything it started\n`));
      signalGroup(child.pid, 'SIGTERM');
      setTimeout(() => signalGroup(child.pid, 'SIGKILL'), STOP_GRACE_MS).unref();
    }, FILE_TIMEOUT_S * 1000);
    const closed = new Promise((r) => child.once('close', r));
    // The file is over at its own exit; 'close' (its output read to the end) can wait on a
    // process it left holding the pipes, which the reaping ends.
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      void reap(child.pid, marker, `run-tests: ${file}`)
        .then(() => Promise.race([closed, new Promise((r) => setTimeout(r, STOP_GRACE_MS).unref())]))
        .then(() => {
          running.delete(entry);
          resolve({
            outcome: timedOut ? 'timed out' : code === 0 ? 'passed' : `failed (${signal ?? `exit ${code}`})`,
            output: Buffer.concat(output).toString(),
          });
        });
    });
  });
}
/** Removes `--name VALUE` from `args`; returns VALUE, or undefined when absent. */
function takeOption(args, name) {
  const at = args.indexOf(name);
  if (at < 0) return undefined;
  const value = args[at + 1] ?? '';
  args.splice(at, 2);
  return value;
}

const args = process.argv.slice(2);
const only = takeOption(args, '--redis');
if (only !== undefined && only !== 'server' && only !== 'cluster') {
  console.error(`--redis '${only}' is not a Redis kind; expected server or cluster`);
  process.exit(2);
}
const jobsText = takeOption(args, '--jobs') ?? process.env.BATON_TEST_JOBS ?? '3';
const jobs = Number(jobsText);
if (!Number.isInteger(jobs) || jobs < 1 || jobs > 16) {
  console.error(`--jobs '${jobsText}' is not a number of test files to run at once; expected a whole number from 1 to 16`);
  process.exit(2);
}
const filters = args;
const files = find('dist')
  .filter((f) => !f.startsWith(join('dist', 'node_modules')))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error('no test files found under dist/; run `npm run build` first');
  process.exit(1);
}
const passes = [];
if (only !== 'cluster') passes.push(...files.map((file) => ({ file, redis: 'server' })));
if (only !== 'server') {
  const onCluster = only === 'cluster' ? files : files.filter((f) => CLUSTER_PASS.some((x) => f.includes(x)));
  passes.push(...onCluster.map((file) => ({ file, redis: 'cluster' })));
}
const started = Date.now();
const failed = [];
let numbered = 0;
/** Runs `pass` and prints its output whole, under a line naming the file and how it ended. */
async function runPass({ file, redis }) {
  const begun = Date.now();
  const { outcome, output } = await runFile(file, redis, ++numbered);
  const where = redis === 'cluster' ? ' on a Redis Cluster' : '';
  process.stdout.write(`\nrun-tests: ${file}${where}: ${outcome} (${Math.round((Date.now() - begun) / 1000)} s)\n${output}`);
  if (outcome !== 'passed') failed.push(`${file}${redis === 'cluster' ? ' (Redis Cluster)' : ''}: ${outcome}`);
}
const shared = passes.filter((p) => !SOLO.some((x) => p.file.includes(x)));
const alone = passes.filter((p) => SOLO.some((x) => p.file.includes(x)));
await Promise.all(
  Array.from({ length: Math.min(jobs, shared.length) }, async () => {
    for (let pass = shared.shift(); pass; pass = shared.shift()) await runPass(pass);
  }),
);
for (const pass of alone) await runPass(pass);
const seconds = Math.round((Date.now() - started) / 1000);
if (failed.length > 0) {
  console.error(`\nrun-tests: ${failed.length} of ${passes.length} test file runs did not pass (${seconds} s):\n  ${failed.join('\n  ')}`);
  process.exit(1);
}
const clusterRuns = passes.filter((p) => p.redis === 'cluster').length;
console.log(`\nrun-tests: all ${passes.length} test file runs passed (${clusterRuns} of them on a Redis Cluster, ${jobs} at a time) (${seconds} s)`);
