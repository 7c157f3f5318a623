import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunCommand } from '../gen/baton/v1/agent_gateway_service';
import { NodeState, type NodeResult } from '../gen/baton/v1/run';
import { InputMethod, type TaskFile } from '../gen/baton/v1/task';
import { createLogger } from '../lib/logger';
import { packageRoot } from '../lib/package-root';
import { newTaskId } from '../lib/task-id';
import { waitFor } from '../test/helpers/wait';
import { FileCache } from './file-cache';
import { Spool } from './spool';
import { TaskRunner } from './task-runner';

/**
 * One fixture task per behaviour of the spec's input and output rules (docs/task-format.md §5, §6),
 * each a real script in agent/fixtures/tasks run by the real runner under the real wrapper.
 */

const IDENTITY = 'fixture.example.com';
const FIXTURES = join(packageRoot(), 'agent', 'fixtures', 'tasks');
const log = createLogger('agent-test', 'silent');

function setup(options: { maxOutputBytes?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'baton-fixtures-'));
  const cacheDir = join(dir, 'cache');
  mkdirSync(cacheDir);
  mkdirSync(join(dir, 'spool'));
  const cache = new FileCache(cacheDir);
  const spool = new Spool(join(dir, 'spool'));
  const runner = new TaskRunner({ identity: IDENTITY, spool, cache, log, killGraceMs: 300, ...options });
  const put = (path: string, fixture: string): TaskFile => {
    const data = readFileSync(join(FIXTURES, fixture));
    const sha256 = createHash('sha256').update(data).digest('hex');
    writeFileSync(join(cacheDir, sha256), data, { mode: 0o640 });
    return { path, sha256, sizeBytes: data.length };
  };
  const command = (fixture: string, overrides: Partial<RunCommand> = {}, extra: TaskFile[] = []): RunCommand =>
    RunCommand.fromPartial({
      taskId: newTaskId(),
      task: 'agentfix::fixture',
      environment: 'production',
      files: [put(`agentfix/tasks/${fixture}`, fixture), ...extra],
      executable: `agentfix/tasks/${fixture}`,
      inputJson: '{}',
      caller: 'user=fixture',
      ...overrides,
    });
  const run = async (cmd: RunCommand): Promise<NodeResult> => {
    const result = await runner.run(cmd, { started: () => undefined, finished: () => undefined });
    assert.ok(result);
    return result;
  };
  return { dir, spool, runner, put, command, run };
}

const errorOf = (r: NodeResult) => (r.value as { _error: { kind: string; msg: string; details: Record<string, unknown> } })._error;

describe('fixture tasks', () => {
  it('succeeds: a JSON object on stdout is the value', async () => {
    const t = setup();
    const r = await t.run(t.command('succeeds.sh'));
    assert.equal(r.state, NodeState.NODE_STATE_SUCCEEDED);
    assert.deepEqual(r.value, { status: 'ok', answer: 42 });
    assert.equal(r.statuscode, 0);
  });

  it('fails: a non-zero exit without _error gets a task-error naming the exit code and stderr', async () => {
    const t = setup();
    const r = await t.run(t.command('fails.sh'));
    assert.equal(r.state, NodeState.NODE_STATE_FAILED);
    assert.equal(r.exitcode, 3);
    assert.equal(errorOf(r).kind, 'puppetlabs.tasks/task-error');
    assert.equal(errorOf(r).msg, 'The task failed with exit code 3 and no stdout, but stderr contained:\ndisk full\n');
  });

  it('prints plain text: the value is _output', async () => {
    const t = setup();
    const r = await t.run(t.command('plain-text.sh'));
    assert.deepEqual(r.value, { _output: 'hello from a plain task\n' });
    assert.equal(r.state, NodeState.NODE_STATE_SUCCEEDED);
  });

  it('prints _error with exit 0: still a failure, with its own kind', async () => {
    const t = setup();
    const r = await t.run(t.command('prints-error.sh'));
    assert.equal(r.exitcode, 0);
    assert.equal(r.state, NodeState.NODE_STATE_FAILED);
    assert.deepEqual(errorOf(r), { kind: 'fixture/broken', msg: 'it broke', details: { step: 2 } });
    assert.equal(r.statusmsg, 'fixture/broken: it broke');
  });

  it('sleeps past its timeout: stopped with baton.tasks/timeout', async () => {
    const t = setup();
    const r = await t.run(t.command('sleeps.sh', { timeoutS: 1 }));
    assert.equal(errorOf(r).kind, 'baton.tasks/timeout');
    assert.equal(r.exitcode, 128 + 15);
    assert.equal(errorOf(r).details.signal, 'SIGTERM');
  });

  it('sleeps and is cancelled by id: CANCELLED', async () => {
    const t = setup();
    const cmd = t.command('sleeps.sh');
    const done = t.run(cmd);
    await waitFor('the wrapper to run', () => readFileSync(join(t.dir, 'spool', cmd.taskId, 'wrapper_pid'), 'utf8') !== '');
    assert.equal(t.runner.cancel(cmd.taskId), true);
    const r = await done;
    assert.equal(r.state, NodeState.NODE_STATE_CANCELLED);
    assert.equal(errorOf(r).kind, 'baton.tasks/cancelled');
  });

  it('ignores SIGTERM: killed after the grace period, reported as the timeout with SIGKILL', async () => {
    const t = setup();
    const r = await t.run(t.command('ignores-sigterm.sh', { timeoutS: 1 }));
    assert.equal(r.exitcode, 128 + 9);
    assert.equal(errorOf(r).kind, 'baton.tasks/timeout');
    assert.equal(errorOf(r).details.signal, 'SIGKILL');
  });

  it('floods output: each stream capped at max-output-bytes with the cut marked; the spool keeps it all', async () => {
    const t = setup({ maxOutputBytes: 64 * 1024 });
    const cmd = t.command('floods-output.sh');
    const r = await t.run(cmd);
    assert.match(r.stdout, /^o{65536}\n\[baton-agent: stdout truncated after 65536 bytes; all of it is in .+\]\n$/);
    assert.match(r.stderr, /^e{65536}\n\[baton-agent: stderr truncated after 65536 bytes/);
    assert.equal(statSync(join(t.dir, 'spool', cmd.taskId, 'stdout')).size, 3_000_000);
  });

  it('prints invalid UTF-8: a task-error saying so (docs/task-format.md §6.1), never a crash', async () => {
    const t = setup();
    const r = await t.run(t.command('invalid-utf8.sh'));
    assert.equal(r.state, NodeState.NODE_STATE_FAILED);
    assert.equal(errorOf(r).msg, 'The task result contained invalid UTF-8 on stdout');
    assert.equal(r.stdout, 'bad \uFFFD\uFFFD bytes\n', 'stdout shown with replacement characters');
  });

  it('reads stdin: one compact JSON document with the metaparameters', async () => {
    const t = setup();
    const cmd = t.command('reads-stdin.sh', { inputMethod: InputMethod.INPUT_METHOD_STDIN, inputJson: '{"name": "x", "list": [1, "a"]}' });
    const r = await t.run(cmd);
    assert.deepEqual(r.value, { name: 'x', list: [1, 'a'], _task: 'agentfix::fixture', _installdir: join(t.dir, 'spool', cmd.taskId, 'files') });
  });

  it('reads PT_ variables: strings raw, numbers, arrays and null as compact JSON', async () => {
    const t = setup();
    const r = await t.run(
      t.command('reads-env.sh', {
        inputMethod: InputMethod.INPUT_METHOD_ENVIRONMENT,
        inputJson: '{"name": "a b", "count": 2, "list": [1, "x"], "nothing": null}',
      }),
    );
    assert.deepEqual(r.value, { _output: 'name=a b\ncount=2\nlist=[1,"x"]\nnothing=null\n' });
  });

  it('uses helper files from _installdir', async () => {
    const t = setup();
    const helper = t.put('agentfix/files/lib/greet.sh', 'lib/greet.sh');
    const r = await t.run(t.command('uses-installdir.sh', { inputJson: '{"name": "fleet"}' }, [helper]));
    assert.deepEqual(r.value, { greeting: 'hello fleet' });
  });
});
