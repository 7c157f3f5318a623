import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunCommand } from '../gen/baton/v1/agent_gateway_service';
import { NodeState, type NodeResult } from '../gen/baton/v1/run';
import { InputMethod } from '../gen/baton/v1/task';
import { processAlive } from '../lib/child-process';
import { createLogger } from '../lib/logger';
import { newTaskId } from '../lib/task-id';
import { waitFor } from '../test/helpers/wait';
import { FileCache } from './file-cache';
import { Spool } from './spool';
import { TaskRunner } from './task-runner';
import { findPython } from './task-supervisor-python';
import { findPerl, launchRecord, perlRuntime, processSupervisor, pythonRuntime, runAlive, TaskSupervisor, type SupervisorRuntime } from './task-supervisor';

const IDENTITY = 'node1.example.com';
const log = createLogger('agent-test', 'silent');

/** Temporary directories of this file, removed after its tests. */
const dirs: string[] = [];
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'baton-supervisor-'));
  dirs.push(dir);
  return dir;
};

/** A cache holding `script`, a spool, and a command running the script with input `{marker}`. */
function setup(script: string) {
  const dir = tempDir();
  const cacheDir = join(dir, 'cache');
  const spoolDir = join(dir, 'spool');
  mkdirSync(cacheDir);
  mkdirSync(spoolDir);
  const data = Buffer.from(script);
  const sha256 = createHash('sha256').update(data).digest('hex');
  writeFileSync(join(cacheDir, sha256), data, { mode: 0o640 });
  const marker = join(dir, 'executions');
  const cmd = RunCommand.fromPartial({
    taskId: newTaskId(),
    task: 'acme::test',
    environment: 'production',
    files: [{ path: 'acme/tasks/test.sh', sha256, sizeBytes: data.length }],
    executable: 'acme/tasks/test.sh',
    inputMethod: InputMethod.INPUT_METHOD_BOTH,
    inputJson: JSON.stringify({ marker }),
    caller: 'user=alice',
  });
  const runner = () => new TaskRunner({ identity: IDENTITY, spool: new Spool(spoolDir), cache: new FileCache(cacheDir), log, pollIntervalMs: 20 });
  const executions = () => (existsSync(marker) ? readFileSync(marker, 'utf8').split('\n').filter(Boolean).length : 0);
  return { dir, cacheDir, spoolDir, cmd, runner, executions, taskDir: join(spoolDir, cmd.taskId) };
}

/** Counts its executions in $PT_marker, then runs a while. */
const COUNTED = '#!/bin/sh\necho run >> "$PT_marker"\nsleep 1\necho \'{"done": true}\'\n';

describe('TaskSupervisor', () => {
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('runs tasks from a supervisor process, not from the agent process', async (t) => {
    if (!processSupervisor()) return t.skip('perl is not installed: the agent spawns a /bin/sh wrapper per task');
    const s = setup('#!/bin/sh\necho "$PPID"\n');
    const result = await s.runner().run(s.cmd, { started: () => undefined, finished: () => undefined });
    assert.equal(result?.state, NodeState.NODE_STATE_SUCCEEDED);
    assert.equal(Number(result?.stdout.toString().trim()), processSupervisor()!.pid, "the task's parent is the supervisor");
    const [pid, start, supervisor] = readFileSync(join(s.taskDir, 'wrapper_pid'), 'utf8').trim().split(' ');
    assert.ok(Number(pid) > 1 && Number(start) > 0, 'wrapper_pid names the task and its start time');
    assert.equal(Number(supervisor), processSupervisor()!.pid);
    assert.equal(readFileSync(join(s.taskDir, 'exitcode'), 'utf8'), '0');
  });

  it('reports a task once when its supervisor is killed mid-task, and starts a new supervisor for the next', async (t) => {
    const supervisor = processSupervisor();
    if (!supervisor) return t.skip('perl is not installed');
    const s = setup(COUNTED);
    const runner = s.runner();
    const finished: NodeResult[] = [];
    const done = runner.run(s.cmd, { started: () => undefined, finished: (r) => finished.push(r) });
    await waitFor('the task to run', () => s.executions() === 1);
    const [taskPid] = readFileSync(join(s.taskDir, 'wrapper_pid'), 'utf8').split(' ').map(Number);
    process.kill(supervisor.pid!, 'SIGKILL');
    await waitFor('the supervisor to be gone', () => supervisor.pid === undefined);
    assert.ok(processAlive(taskPid), 'the task outlives its supervisor');
    const result = await done;
    // Nobody was left to wait for the task, so its exit status is unknown; its output is kept.
    assert.equal((result?.value as { _error: { kind: string } })._error.kind, 'baton.tasks/wrapper-died');
    assert.match(readFileSync(join(s.taskDir, 'stdout'), 'utf8'), /"done": true/, 'the task ran to its end');
    assert.equal(finished.length, 1, 'one result reported');
    assert.equal(s.executions(), 1);

    const next = setup('#!/bin/sh\necho again\n');
    const again = await next.runner().run(next.cmd, { started: () => undefined, finished: () => undefined });
    assert.equal(again?.state, NodeState.NODE_STATE_SUCCEEDED);
  });

  it('lets a task started just before a SIGKILL of the agent finish, reports it once and never runs it twice', async () => {
    const s = setup(COUNTED);
    // The agent: a separate Node process with a TaskRunner, killed as soon as the task started.
    const agentScript = `
      const { TaskRunner } = require(${JSON.stringify(join(__dirname, 'task-runner'))});
      const { Spool } = require(${JSON.stringify(join(__dirname, 'spool'))});
      const { FileCache } = require(${JSON.stringify(join(__dirname, 'file-cache'))});
      const { RunCommand } = require(${JSON.stringify(join(__dirname, '..', 'gen', 'baton', 'v1', 'agent_gateway_service'))});
      const { createLogger } = require(${JSON.stringify(join(__dirname, '..', 'lib', 'logger'))});
      const runner = new TaskRunner({ identity: 'x', spool: new Spool(process.argv[1]), cache: new FileCache(process.argv[2]), log: createLogger('a', 'silent') });
      void runner.run(RunCommand.fromJSON(JSON.parse(process.argv[3])), { started: () => console.log('started'), finished: () => console.log('finished') });
    `;
    const agent = spawn(process.execPath, ['-e', agentScript, s.spoolDir, s.cacheDir, JSON.stringify(RunCommand.toJSON(s.cmd))], {
      detached: true,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      await new Promise<void>((resolve, reject) => {
        agent.stdout.on('data', (b: Buffer) => b.toString().includes('started') && resolve());
        agent.once('exit', (code) => reject(new Error(`the agent exited (${code}) before the task started`)));
      });
      process.kill(-agent.pid!, 'SIGKILL');
    } finally {
      if (agent.exitCode === null) process.kill(-agent.pid!, 'SIGKILL');
    }

    // The next agent process adopts the running task and reports it when it ends.
    const runner = s.runner();
    const reported: NodeResult[] = [];
    const events = { started: () => undefined, finished: (r: NodeResult) => reported.push(r) };
    assert.deepEqual(await runner.recover(events), { finished: 0, adopted: 1 });
    await waitFor('the adopted task to be reported', () => reported.length === 1, 10_000);
    assert.equal(reported[0].state, NodeState.NODE_STATE_SUCCEEDED);
    assert.deepEqual(reported[0].value, { done: true });
    // The scheduler sends the command again after the reconnect: the stored result, no second run.
    const again = await runner.run(s.cmd, events);
    assert.deepEqual(again, reported[0]);
    assert.equal(reported.length, 2, 'the re-sent result is the stored one');
    assert.equal(s.executions(), 1, 'the task ran once');
  });

  it('passes a stdin document larger than a pipe holds, and is not held up by a task that never reads it', async () => {
    const blob = 'x'.repeat(200_000);
    const reader = setup('#!/bin/sh\nwc -c\n');
    const ignorer = setup('#!/bin/sh\nsleep 0.2\necho ignored\n');
    const input = JSON.stringify({ blob });
    const events = { started: () => undefined, finished: () => undefined };
    const [read, ignored] = await Promise.all([
      reader.runner().run({ ...reader.cmd, inputMethod: InputMethod.INPUT_METHOD_STDIN, inputJson: input }, events),
      ignorer.runner().run({ ...ignorer.cmd, inputMethod: InputMethod.INPUT_METHOD_STDIN, inputJson: input }, events),
    ]);
    assert.equal(read?.state, NodeState.NODE_STATE_SUCCEEDED);
    const expected = Buffer.byteLength(JSON.stringify({ blob, _task: 'acme::test', _installdir: join(reader.taskDir, 'files') }));
    assert.equal(Number(read?.stdout.toString().trim()), expected, 'the whole document arrived');
    assert.equal(ignored?.stdout.toString(), 'ignored\n');
  });

  it('tells a live run from a finished one by pid and start time, never by pid alone', async () => {
    const dir = tempDir();
    const stat = readFileSync(`/proc/${process.pid}/stat`, 'utf8');
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    assert.equal(await runAlive(`${process.pid} ${start} 0 0`, dir), true, 'the task runs');
    assert.equal(await runAlive(`${process.pid} 1 0 0`, dir), false, 'same pid, another process');
    assert.equal(await runAlive(`999999999 1 ${process.pid} ${start}`, dir), true, 'the task ended; its supervisor still has to write exitcode');
    writeFileSync(join(dir, 'exitcode'), '0');
    assert.equal(await runAlive(`999999999 1 ${process.pid} ${start}`, dir), false, 'exitcode written');
    assert.equal(await runAlive(undefined, dir), false, 'never started');
  });

  // Both supervisors speak one protocol; the rest of this file and the agent's tests use whichever
  // processSupervisor() picks, so each is also run here on its own.
  const python = findPython();
  const perl = findPerl();
  const runtimes: Array<[string, SupervisorRuntime | undefined]> = [
    ['Python', python === undefined ? undefined : pythonRuntime(python)],
    ['perl', perl === undefined ? undefined : perlRuntime(perl)],
  ];
  for (const [name, runtime] of runtimes) {
    it(`${name} supervisor: runs a task in its spool directory, input on stdin and in PT_ variables, output and exit status in the spool`, async (t) => {
      if (!runtime) return t.skip(`${name} is not installed`);
      const supervisor = new TaskSupervisor(runtime);
      const s = setup('#!/bin/sh\npwd\nhead -c 300\necho\necho "$PT_marker"\necho oops >&2\nexit 3\n');
      const runner = new TaskRunner({ identity: IDENTITY, spool: new Spool(s.spoolDir), cache: new FileCache(s.cacheDir), log, supervisor });
      const result = await runner.run(s.cmd, { started: () => undefined, finished: () => undefined });
      assert.equal(result?.state, NodeState.NODE_STATE_FAILED);
      assert.equal(result?.exitcode, 3);
      const marker = (JSON.parse(s.cmd.inputJson) as { marker: string }).marker;
      const [cwd, stdin, env] = result.stdout.toString().split('\n');
      assert.equal(cwd, s.taskDir, 'the task runs in its spool directory');
      assert.equal((JSON.parse(stdin) as { marker: string }).marker, marker, 'the input document on stdin');
      assert.equal(env, marker, 'the input in PT_ variables');
      assert.equal(result?.stderr, 'oops\n');
      assert.equal(readFileSync(join(s.taskDir, 'exitcode'), 'utf8'), '3');
      const [pid, start, supervisorPid] = readFileSync(join(s.taskDir, 'wrapper_pid'), 'utf8').trim().split(' ');
      assert.ok(Number(pid) > 1 && Number(start) > 0, 'wrapper_pid names the task and its start time');
      assert.equal(Number(supervisorPid), supervisor.pid);
    });

    it(`${name} supervisor: a task that cannot be executed exits 127 with the reason in its stderr`, async (t) => {
      if (!runtime) return t.skip(`${name} is not installed`);
      const dir = tempDir();
      const task = await new TaskSupervisor(runtime).launch({ dir, argv: [join(dir, 'missing')], env: {} });
      assert.equal(await task.exited, true);
      assert.equal(readFileSync(join(dir, 'exitcode'), 'utf8'), '127');
      assert.match(readFileSync(join(dir, 'stderr'), 'utf8'), /^baton-task-supervisor: cannot run .*missing: No such file or directory\n$/);
    });
  }

  it('refuses an argument or environment value holding a NUL byte instead of cutting it', () => {
    assert.throws(() => launchRecord(1, { dir: '/d', argv: ['/bin/true'], env: { PT_x: 'a\0b' } }), /holds a NUL byte/);
    const record = launchRecord(7, { dir: '/d', argv: ['/bin/true'], env: { A: 'b' }, stdin: '{"x":1}' }).toString();
    const [length, payload] = [Number(record.slice(0, record.indexOf('\n'))), record.slice(record.indexOf('\n') + 1)];
    assert.equal(Buffer.byteLength(payload), length);
    assert.deepEqual(payload.split('\0'), ['7', '/d', '1', '/bin/true', '1', 'A=b', 'p', '{"x":1}']);
  });
});
