import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunCommand, type TaskStarted } from '../gen/baton/v1/agent_gateway_service';
import { NodeResult, NodeState } from '../gen/baton/v1/run';
import { InputMethod, type TaskFile } from '../gen/baton/v1/task';
import { createLogger } from '../lib/logger';
import { newTaskId } from '../lib/task-id';
import { waitFor } from '../test/helpers/wait';
import { FileCache } from './file-cache';
import { REDACTED_VALUE } from '../lib/redaction';
import { Spool } from './spool';
import { TaskRunner } from './task-runner';
import { processAlive } from '../lib/child-process';

const IDENTITY = 'node1.example.com';
const log = createLogger('agent-test', 'silent');

/** A runner over a fresh cache and spool, with helpers to put files in the cache and run commands. */
function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'baton-runner-'));
  const cacheDir = join(dir, 'cache');
  const spoolDir = join(dir, 'spool');
  mkdirSync(cacheDir);
  mkdirSync(spoolDir);
  const cache = new FileCache(cacheDir);
  const spool = new Spool(spoolDir);
  const runner = new TaskRunner({ identity: IDENTITY, spool, cache, log, killGraceMs: 500 });

  /** Stores content in the cache as the download would, and returns its TaskFile. */
  const put = (path: string, content: string): TaskFile => {
    const data = Buffer.from(content);
    const sha256 = createHash('sha256').update(data).digest('hex');
    writeFileSync(join(cacheDir, sha256), data, { mode: 0o640 });
    return { path, sha256, sizeBytes: data.length };
  };

  const command = (overrides: Partial<RunCommand>): RunCommand =>
    RunCommand.fromPartial({
      taskId: newTaskId(),
      task: 'acme::test',
      environment: 'production',
      executable: 'acme/tasks/test.sh',
      inputJson: '{}',
      caller: 'user=alice',
      ...overrides,
    });

  /** Runs a command to the end and returns what was reported. */
  const run = async (cmd: RunCommand) => {
    const started: TaskStarted[] = [];
    const finished: NodeResult[] = [];
    const result = await runner.run(cmd, { started: (e) => started.push(e), finished: (r) => finished.push(r) });
    return { result, started, finished };
  };

  /** A one-file task whose executable is `script`. */
  const task = (script: string, overrides: Partial<RunCommand> = {}): RunCommand =>
    command({ files: [put('acme/tasks/test.sh', script)], executable: 'acme/tasks/test.sh', ...overrides });

  return { dir, cacheDir, spoolDir, cache, spool, runner, put, command, run, task };
}

describe('TaskRunner', () => {
  it('passes PT_ variables: strings raw, numbers, booleans, null, arrays and objects as compact JSON', async () => {
    const t = setup();
    const script = [
      '#!/bin/sh',
      'for v in "$PT_name" "$PT_count" "$PT_ratio" "$PT_flag" "$PT_nothing" "$PT_list" "$PT_obj" "$PT__task" "$PT__installdir" "$_choria_task_id" "$_choria_task_caller" "$_task"; do',
      '  printf "%s\\n" "$v"',
      'done',
      'cat', // environment-only input: stdin is empty
    ].join('\n');
    const input = { name: 'web 1 "quoted"', count: 3, ratio: 1.5, flag: true, nothing: null, list: [1, 'a'], obj: { x: { y: [0] } } };
    const cmd = t.task(script, { inputMethod: InputMethod.INPUT_METHOD_ENVIRONMENT, inputJson: JSON.stringify(input) });
    const { result } = await t.run(cmd);
    const installdir = join(t.spoolDir, cmd.taskId, 'files');
    assert.equal(
      result?.stdout,
      ['web 1 "quoted"', '3', '1.5', 'true', 'null', '[1,"a"]', '{"x":{"y":[0]}}', 'acme::test', installdir, cmd.taskId, 'user=alice', 'acme::test', ''].join(
        '\n',
      ),
    );
    assert.equal(result?.state, NodeState.NODE_STATE_SUCCEEDED);
  });

  it('writes the input as one JSON document on stdin with _task, _installdir and _noop, and sets no PT_ variables for stdin', async () => {
    const t = setup();
    const cmd = t.task('#!/bin/sh\ncat\nenv | grep "^PT_" >&2\nexit 0\n', {
      inputMethod: InputMethod.INPUT_METHOD_STDIN,
      inputJson: JSON.stringify({ message: 'hi', count: 2 }),
      noop: true,
      supportsNoop: true,
    });
    const { result, started, finished } = await t.run(cmd);
    const installdir = join(t.spoolDir, cmd.taskId, 'files');
    assert.deepEqual(JSON.parse(result!.stdout), { message: 'hi', count: 2, _task: 'acme::test', _installdir: installdir, _noop: true });
    assert.deepEqual(
      result?.value,
      { message: 'hi', count: 2, _task: 'acme::test', _installdir: installdir, _noop: true },
      'a JSON object on stdout is the value',
    );
    assert.equal(result?.stderr, '', 'no PT_ variables');
    assert.equal(started.length, 1);
    assert.equal(started[0].taskId, cmd.taskId);
    assert.deepEqual(finished, [result]);
  });

  it('lays the files out under _installdir at their module-relative paths, executable 0750', async () => {
    const t = setup();
    const helper = t.put('acme/files/lib/greet.sh', 'greet() { echo "hello $1"; }\n');
    const exe = t.put('acme/tasks/test.sh', '#!/bin/sh\n. "$PT__installdir/acme/files/lib/greet.sh"\ngreet "$PT_who"\n');
    const cmd = t.command({ files: [exe, helper], inputJson: '{"who":"world"}' });
    const { result } = await t.run(cmd);
    assert.deepEqual(result?.value, { _output: 'hello world\n' });
    assert.equal(statSync(join(t.spoolDir, cmd.taskId, 'files/acme/tasks/test.sh')).mode & 0o777, 0o750);
    assert.equal(readFileSync(join(t.spoolDir, cmd.taskId, 'stdout'), 'utf8'), 'hello world\n');
    assert.equal(readFileSync(join(t.spoolDir, cmd.taskId, 'exitcode'), 'utf8'), '0');
  });

  it('turns plain text output into _output and reports success', async () => {
    const t = setup();
    const { result } = await t.run(t.task('#!/bin/sh\necho "all good"\n'));
    assert.ok(result);
    assert.deepEqual(result.value, { _output: 'all good\n' });
    assert.equal(result.exitcode, 0);
    assert.equal(result.completed, true);
    assert.equal(result.statuscode, 0);
    assert.equal(result.statusmsg, '');
    assert.equal(result.host, IDENTITY);
    assert.equal(result.callerid, 'user=alice');
    assert.ok(result.runtime >= 0 && result.runtime < 10);
  });

  it('reports exit code 3 as a puppetlabs.tasks/task-error failure', async () => {
    const t = setup();
    const cmd = t.task('#!/bin/sh\necho "broken" >&2\nexit 3\n');
    const { result } = await t.run(cmd);
    assert.ok(result);
    assert.equal(result.state, NodeState.NODE_STATE_FAILED);
    assert.equal(result.exitcode, 3);
    assert.equal(result.statuscode, 1);
    assert.equal(result.stderr, 'broken\n');
    const error = (result.value as { _error: { kind: string; msg: string; details: unknown } })._error;
    assert.equal(error.kind, 'puppetlabs.tasks/task-error');
    assert.equal(error.msg, 'The task failed with exit code 3 and no stdout, but stderr contained:\nbroken\n');
    assert.deepEqual(error.details, { exit_code: 3 });
    assert.equal(result.statusmsg, `puppetlabs.tasks/task-error: ${error.msg}`);
    assert.equal(readFileSync(join(t.spoolDir, cmd.taskId, 'exitcode'), 'utf8'), '3');
  });

  it('stops a task at its timeout, with every process of its group', async () => {
    const t = setup();
    // The background sleep is in the task's process group; it must die with the task.
    const cmd = t.task('#!/bin/sh\nsleep 30 &\necho $! > bg.pid\nwait\n', { timeoutS: 1 });
    const t0 = Date.now();
    const { result } = await t.run(cmd);
    assert.ok(Date.now() - t0 < 5_000, 'stopped near its 1 s timeout');
    assert.ok(result);
    assert.equal(result.state, NodeState.NODE_STATE_FAILED);
    assert.equal(result.exitcode, 128 + 15, 'killed by SIGTERM');
    assert.equal((result.value as { _error: { kind: string } })._error.kind, 'baton.tasks/timeout');
    assert.match(result.statusmsg, /^baton\.tasks\/timeout: The task did not finish within its timeout of 1 s/);
    const bg = Number(readFileSync(join(t.spoolDir, cmd.taskId, 'bg.pid'), 'utf8'));
    await waitFor('the background process to be gone', () => !processAlive(bg), 3_000);
  });

  it('kills a task that ignores SIGTERM after the grace period', async () => {
    const t = setup();
    const cmd = t.task("#!/bin/sh\ntrap '' TERM\necho ready\nwhile :; do sleep 0.1; done\n", { timeoutS: 1 });
    const { result } = await t.run(cmd);
    assert.equal(result?.exitcode, 128 + 9, 'killed by SIGKILL');
    assert.equal(result?.state, NodeState.NODE_STATE_FAILED);
  });

  it('cancels a running task: SIGTERM to its group, state CANCELLED', async () => {
    const t = setup();
    const cmd = t.task('#!/bin/sh\necho started\nsleep 30\n');
    const done = t.run(cmd);
    await waitFor('the task to run', () => t.runner.isRunning(cmd.taskId));
    assert.equal(t.runner.cancel(cmd.taskId), true);
    const { result } = await done;
    assert.equal(result?.state, NodeState.NODE_STATE_CANCELLED);
    assert.equal((result?.value as { _error: { kind: string } })._error.kind, 'baton.tasks/cancelled');
    assert.equal(t.runner.cancel(cmd.taskId), false, 'nothing left to cancel');
  });

  it('never starts a task whose cancel came before its run command, and reports it CANCELLED', async () => {
    const t = setup();
    const cmd = t.task('#!/bin/sh\necho never\n');
    assert.equal(t.runner.cancel(cmd.taskId), false, 'nothing held to stop yet');
    const { result, started } = await t.run(cmd);
    assert.equal(result?.state, NodeState.NODE_STATE_CANCELLED);
    assert.match(result?.statusmsg ?? '', /the task was cancelled before it started$/);
    assert.deepEqual(started, [], 'no TaskStarted');
    assert.equal(existsSync(join(t.spoolDir, cmd.taskId, 'wrapper_pid')), false, 'the task never started');
  });

  it('never starts a task cancelled while its command was checked and laid out', async () => {
    const t = setup();
    const cmd = t.task('#!/bin/sh\necho never\n');
    const done = t.run(cmd);
    t.runner.cancel(cmd.taskId);
    const { result } = await done;
    assert.equal(result?.state, NodeState.NODE_STATE_CANCELLED);
    assert.equal(existsSync(join(t.spoolDir, cmd.taskId, 'wrapper_pid')), false, 'the task never started');
  });

  it('refuses a task id that is not one, before writing anything', async () => {
    const t = setup();
    const { result, started } = await t.run(t.task('#!/bin/sh\necho no\n', { taskId: '../x' }));
    assert.equal(result?.statuscode, 4);
    assert.equal(result?.completed, false);
    assert.equal(result?.exitcode, -1);
    assert.match(result.statusmsg, /node node1\.example\.com: '\.\.\/x' is not a task id; expected 32 lowercase hex characters/);
    assert.deepEqual(started, []);
    assert.deepEqual(readdirSync(t.spoolDir), []);
    assert.equal(existsSync(join(t.dir, 'x')), false);
  });

  it('refuses a file path with .. before writing anything', async () => {
    const t = setup();
    const exe = t.put('acme/tasks/test.sh', '#!/bin/sh\necho no\n');
    const evil = t.put('acme/files/../../../escape.sh', 'boom');
    const { result } = await t.run(t.command({ files: [exe, evil] }));
    assert.equal(result?.statuscode, 4);
    assert.equal(result?.state, NodeState.NODE_STATE_FAILED);
    assert.match(result.statusmsg, /task file acme\/files\/\.\.\/\.\.\/\.\.\/escape\.sh: the path contains a relative component/);
    assert.deepEqual(readdirSync(t.spoolDir), []);
    assert.equal(existsSync(join(t.dir, 'escape.sh')), false);
  });

  it('refuses to run from a cache file that does not match, naming node, file, expected and actual sha256', async () => {
    const t = setup();
    const cmd = t.task('#!/bin/sh\necho original\n');
    const file = cmd.files[0];
    const tampered = '#!/bin/sh\necho tampered\n';
    writeFileSync(join(t.cacheDir, file.sha256), tampered);
    const actual = createHash('sha256').update(tampered).digest('hex');
    const { result, started } = await t.run(cmd);
    assert.equal(result?.statuscode, 5);
    assert.equal(result?.state, NodeState.NODE_STATE_FAILED);
    assert.equal(result?.completed, false);
    assert.equal(result?.exitcode, -1);
    for (const part of [IDENTITY, 'acme/tasks/test.sh', `expected sha256 ${file.sha256}`, actual])
      assert.ok(result.statusmsg.includes(part), `${part} in ${result.statusmsg}`);
    assert.deepEqual(started, [], 'never run');
    assert.deepEqual(readdirSync(t.spoolDir), []);
  });

  it('does not run a task id twice, and re-sends the first run\u2019s result', async () => {
    const t = setup();
    const marker = join(t.dir, 'runs');
    const cmd = t.task('#!/bin/sh\necho ran >> "$PT_marker"\necho done\n', { inputJson: JSON.stringify({ marker }) });
    const first = await t.run(cmd);
    const second = await t.run(cmd);
    assert.equal(readFileSync(marker, 'utf8'), 'ran\n', 'the task ran once');
    assert.deepEqual(second.started, []);
    assert.deepEqual(second.finished, [first.result], 'the stored result is re-sent');
  });

  it('never writes a sensitive parameter value to the spool', async () => {
    const t = setup();
    const secret = 'hunter2-do-not-store';
    const cmd = t.task('#!/bin/sh\ncat > /dev/null\ntest -n "$PT_password" && echo "got $PT_user"\n', {
      inputJson: JSON.stringify({ user: 'bob', password: secret }),
      sensitiveParameters: ['password'],
    });
    const { result } = await t.run(cmd);
    assert.deepEqual(result?.value, { _output: 'got bob\n' }, 'the task received the value');
    const walk = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
    for (const f of walk(join(t.spoolDir, cmd.taskId))) assert.ok(!readFileSync(f, 'utf8').includes(secret), `${f} holds the secret`);
    assert.ok(readFileSync(join(t.spoolDir, cmd.taskId, 'request.json'), 'utf8').includes(REDACTED_VALUE));
  });

  it('caps the output put in the result at 1 MiB per stream, cut on a character boundary, and keeps all of it in the spool', async () => {
    const t = setup();
    // 600,000 two-byte characters: 1.2 MB of valid UTF-8.
    const cmd = t.task("#!/bin/sh\nhead -c 600000 /dev/zero | tr '\\0' 'x' | sed 's/x/é/g'\n");
    const { result } = await t.run(cmd);
    assert.ok(result);
    assert.equal(statSync(join(t.spoolDir, cmd.taskId, 'stdout')).size, 1_200_000);
    assert.match(result.stdout, /^é+\n\[baton-agent: stdout truncated after 1048576 bytes; all of it is in .+\]\n$/);
    assert.equal(result.state, NodeState.NODE_STATE_SUCCEEDED, 'a cut output is still valid UTF-8');
  });

  it('reports an executable that cannot be started as statuscode 5 and keeps that result', async () => {
    const t = setup();
    // The interpreter named by the shebang does not exist: exec fails with ENOENT.
    const cmd = t.task('#!/nonexistent/interpreter\necho never\n');
    const { result, started } = await t.run(cmd);
    assert.equal(result?.statuscode, 5);
    assert.equal(result?.completed, false);
    assert.match(result.statusmsg, /node node1\.example\.com: cannot start acme\/tasks\/test\.sh: .*ENOENT/);
    assert.deepEqual(started, []);
    assert.deepEqual(
      (await t.spool.listUnacknowledged()).map((r) => r.taskId),
      [cmd.taskId],
    );
  });

  it('lets a second runner (the agent restarted) adopt a running task and report the same result, byte for byte', async () => {
    const t = setup();
    const cmd = t.task('#!/bin/sh\nsleep 0.5\necho \'{"done": true}\'\n');
    const first = t.run(cmd);
    await waitFor('the wrapper pid', () => existsSync(join(t.spoolDir, cmd.taskId, 'wrapper_pid')));
    const restarted = new TaskRunner({ identity: IDENTITY, spool: t.spool, cache: t.cache, log, pollIntervalMs: 20 });
    const adoptedResults: NodeResult[] = [];
    const recovered = await restarted.recover({ started: () => undefined, finished: (r) => adoptedResults.push(r) });
    assert.deepEqual(recovered, { finished: 0, adopted: 1 });
    const { result } = await first;
    await waitFor('the adopted task to be reported', () => adoptedResults.length === 1);
    assert.deepEqual(result?.value, { done: true });
    const bytes = (r: NodeResult) => JSON.stringify(NodeResult.toJSON(r));
    assert.equal(bytes(adoptedResults[0]), bytes(result), 'both processes report the one result.json');
  });

  it('reports a run that finished while no agent ran from its spool files alone', async () => {
    const t = setup();
    const cmd = t.task('#!/bin/sh\necho never-run\n');
    assert.equal(await t.spool.create(cmd.taskId), true);
    await t.spool.writeRequest(cmd);
    const dir = join(t.spoolDir, cmd.taskId);
    writeFileSync(join(dir, 'wrapper_pid'), '999999');
    writeFileSync(join(dir, 'start_time'), '2026-01-01T00:00:00.000Z');
    writeFileSync(join(dir, 'stdout'), 'plain text\n');
    writeFileSync(join(dir, 'stderr'), '');
    writeFileSync(join(dir, 'exitcode'), '0');
    assert.deepEqual(await t.runner.recover({ started: () => undefined, finished: () => assert.fail('reported with the Hello, not as an event') }), {
      finished: 1,
      adopted: 0,
    });
    const [result] = await t.spool.listUnacknowledged();
    assert.equal(result.taskId, cmd.taskId);
    assert.equal(result.task, 'acme::test');
    assert.equal(result.callerid, 'user=alice');
    assert.deepEqual(result.value, { _output: 'plain text\n' });
    assert.equal(result.startTime?.toISOString(), '2026-01-01T00:00:00.000Z');
  });

  it('reports a task whose wrapper died without an exit status as baton.tasks/wrapper-died, and a queued one as not started', async () => {
    const t = setup();
    const runner = new TaskRunner({ identity: IDENTITY, spool: t.spool, cache: t.cache, log, supervisor: null, pollIntervalMs: 20 });
    const cmd = t.task('#!/bin/sh\nsleep 30\n');
    const done = runner.run(cmd, { started: () => undefined, finished: () => undefined });
    const pidFile = join(t.spoolDir, cmd.taskId, 'wrapper_pid');
    await waitFor('the wrapper pid', () => readFileSync(pidFile, 'utf8').trim() !== '');
    // SIGKILL to the whole group, not by the agent: nothing records an exit status.
    process.kill(-Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
    const result = await done;
    assert.equal(result?.state, NodeState.NODE_STATE_FAILED);
    assert.equal((result?.value as { _error: { kind: string } })._error.kind, 'baton.tasks/wrapper-died');
    assert.equal(result?.statuscode, 5);

    const queued = t.task('#!/bin/sh\necho queued\n');
    assert.equal(await t.spool.create(queued.taskId), true);
    await t.spool.writeRequest(queued);
    await t.runner.recover({ started: () => undefined, finished: () => undefined });
    const stored = await t.spool.readResult(queued.taskId);
    assert.equal((stored?.value as { _error: { kind: string } })._error.kind, 'baton.tasks/not-started');
  });

  it('runs at most max-concurrent-tasks at once, queues the rest, and cancels a queued task without starting it', async () => {
    const t = setup();
    const runner = new TaskRunner({ identity: IDENTITY, spool: t.spool, cache: t.cache, log, maxConcurrentTasks: 1 });
    const events: string[] = [];
    let most = 0;
    const ev = (name: string) => ({
      started: () => {
        most = Math.max(most, runner.runningCount);
        events.push(`${name} started`);
      },
      finished: () => events.push(`${name} finished`),
    });
    const a = t.task('#!/bin/sh\nsleep 0.3\n');
    const b = t.task('#!/bin/sh\nsleep 0.1\n');
    const c = t.task('#!/bin/sh\necho never\n');
    const runA = runner.run(a, ev('a'));
    await waitFor('a to start', () => events.includes('a started'));
    const runB = runner.run(b, ev('b'));
    await waitFor('b to be queued', () => runner.queuedCount === 1);
    const runs = [runA, runB, runner.run(c, ev('c'))];
    await waitFor('c to be queued', () => runner.queuedCount === 2);
    assert.equal(runner.runningCount, 1);
    assert.equal(runner.cancel(c.taskId), true);
    const [, , cancelled] = await Promise.all(runs);
    assert.deepEqual(events.slice(0, 2), ['a started', 'c finished']);
    assert.deepEqual(events.slice(2).sort(), ['a finished', 'b finished', 'b started']);
    assert.equal(events.at(-1), 'b finished');
    assert.equal(most, 1, 'never two running at once');
    assert.equal(cancelled?.state, NodeState.NODE_STATE_CANCELLED);
    assert.equal(existsSync(join(t.spoolDir, c.taskId, 'wrapper_pid')), false, 'the cancelled task never started');
  });

  it('caps output at the configured size and marks the cut', async () => {
    const t = setup();
    const runner = new TaskRunner({ identity: IDENTITY, spool: t.spool, cache: t.cache, log, maxOutputBytes: 2048 });
    const cmd = t.task("#!/bin/sh\nhead -c 5000 /dev/zero | tr '\\0' 'y'\nhead -c 3000 /dev/zero | tr '\\0' 'z' >&2\n");
    const result = await runner.run(cmd, { started: () => undefined, finished: () => undefined });
    assert.match(result!.stdout, /^y{2048}\n\[baton-agent: stdout truncated after 2048 bytes; all of it is in .+\]\n$/);
    assert.match(result!.stderr, /^z{2048}\n\[baton-agent: stderr truncated after 2048 bytes/);
  });

  it('refuses _noop for a task without supports_noop with the spec\u2019s message', async () => {
    const t = setup();
    const { result, started } = await t.run(t.task('#!/bin/sh\necho ran\n', { noop: true, supportsNoop: false }));
    assert.equal(result?.statuscode, 5);
    assert.equal(result?.statusmsg, `bolt/noop-not-supported: node ${IDENTITY}: Task does not support noop`);
    assert.deepEqual(started, []);
  });

  it('runs the first implementation whose requirements are all features, and fails the node clearly when none fits', async () => {
    const t = setup();
    const ps1 = t.put('acme/tasks/test.ps1', 'Write-Output "windows"\n');
    const sh = t.put('acme/tasks/test.sh', '#!/bin/sh\necho "posix $PT_x"\n');
    const implementations = [
      { path: 'acme/tasks/test.ps1', requirements: ['powershell'], inputMethod: InputMethod.INPUT_METHOD_UNSPECIFIED, files: [] },
      { path: 'acme/tasks/test.sh', requirements: ['shell'], inputMethod: InputMethod.INPUT_METHOD_ENVIRONMENT, files: [] },
    ];
    const ok = await t.run(t.command({ files: [ps1, sh], executable: 'acme/tasks/test.ps1', implementations, inputJson: '{"x":"y"}' }));
    assert.equal(ok.result?.stdout, 'posix y\n');
    const none = await t.run(t.command({ files: [ps1, sh], executable: 'acme/tasks/test.ps1', implementations: [implementations[0]] }));
    assert.equal(none.result?.statuscode, 5);
    assert.equal(
      none.result?.statusmsg,
      `bolt/no-implementation: node ${IDENTITY}: no implementation of acme::test can run on this node (features: shell); acme/tasks/test.ps1 requires [powershell]`,
    );
  });

  it('runs a task as the run_as user with its groups and a clean environment when root, and refuses run_as otherwise', async () => {
    const t = setup();
    const runner = new TaskRunner({ identity: IDENTITY, spool: t.spool, cache: t.cache, log, env: { ...process.env, AGENT_ONLY: 'x' } });
    const cmd = t.task('#!/bin/sh\necho "$(id -un) $(id -G) $HOME ${AGENT_ONLY:-clean} $PT_v"\n', { runAs: 'nobody', inputJson: '{"v":"in"}' });
    const result = await runner.run(cmd, { started: () => undefined, finished: () => undefined });
    if (process.getuid?.() === 0) {
      chmodSync(t.dir, 0o711); // the user traverses the test's temp directory to its spool
      const again = t.task('#!/bin/sh\necho "$(id -un) $(id -G) $HOME ${AGENT_ONLY:-clean} $PT_v"\n', { runAs: 'nobody', inputJson: '{"v":"in"}' });
      const r = await runner.run(again, { started: () => undefined, finished: () => undefined });
      const groups = execFileSync('id', ['-G', 'nobody'], { encoding: 'utf8' }).trim();
      const home = execFileSync('getent', ['passwd', 'nobody'], { encoding: 'utf8' }).split(':')[5];
      assert.equal(r?.stdout, `nobody ${groups} ${home} clean in\n`, r?.stderr);
    } else {
      assert.equal(result?.statuscode, 5);
      assert.match(result.statusmsg, /run_as 'nobody' needs the agent to run as root; it runs as /);
    }
  });
});
