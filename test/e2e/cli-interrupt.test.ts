import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { StatusDocument } from '../../cli/status-document';
import { TaskFinished } from '../../gen/baton/v1/agent_gateway_service';
import { NodeResult, NodeState } from '../../gen/baton/v1/run';
import { runCli } from '../helpers/cli';
import { cliEnvironmentpath } from '../helpers/cli-environment';
import { useDevStack } from '../helpers/dev-stack';
import { startCliInPty, type PtySession } from '../helpers/pty';
import { TestAgent } from '../helpers/test-agent';
import { waitFor } from '../helpers/wait';

const CTRL_C = '\x03';

/** A line as text: without terminal escapes (the progress line's clearing). */
function withoutEscapes(line: string): string {
  // eslint-disable-next-line no-control-regex
  return line.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
}

/** The task id of the first line, printed before any node has finished. */
async function taskIdOf(session: PtySession): Promise<string> {
  const line = await waitFor(
    'the task id',
    () => /Attempting to download and run task runs::sleep on 2 nodes \(task id ([0-9a-f]{32})\)/.exec(session.output()),
    60_000,
    50,
  );
  return line![1];
}

describe('Ctrl-C while baton tasks run waits, on a terminal', () => {
  const fleet = useDevStack({ agents: 2, environmentpath: cliEnvironmentpath() });
  const status = async (taskId: string): Promise<StatusDocument> =>
    JSON.parse((await runCli(['tasks', 'status', taskId, '--json'], fleet.env)).stdout) as StatusDocument;

  it('prints the task id at once; one Ctrl-C says the run goes on and how to watch or cancel it, and the run does go on', async () => {
    const session = startCliInPty(['tasks', 'run', 'runs::sleep', '--seconds', '4'], fleet.env);
    try {
      const taskId = await taskIdOf(session);
      session.type(CTRL_C);
      assert.equal(await session.exited, 130, session.output());
      const lines = session
        .output()
        .split(/\r?\n/)
        .filter((l) => l.startsWith('Interrupted'));
      assert.deepEqual(lines, [
        `Interrupted: task ${taskId} goes on running on its nodes; watch it with 'baton tasks watch ${taskId}', cancel it with 'baton tasks cancel ${taskId}' (or press Ctrl-C again within 3 s)`,
      ]);
      await waitFor('the run to succeed on both nodes anyway', async () => (await status(taskId)).summary.success, 60_000, 500);
    } finally {
      session.kill();
    }
  });

  it('cancels the run on a second Ctrl-C within a few seconds', async () => {
    const session = startCliInPty(['tasks', 'run', 'runs::sleep', '--seconds', '60'], fleet.env);
    try {
      const taskId = await taskIdOf(session);
      session.type(CTRL_C);
      await waitFor('the first Ctrl-C line', () => session.output().includes('Interrupted:'), 10_000);
      session.type(CTRL_C);
      assert.equal(await session.exited, 130, session.output());
      assert.match(session.output(), new RegExp(`Cancelled task ${taskId}: cancel sent to 2 nodes`));
      await waitFor('both nodes cancelled', async () => (await status(taskId)).items.every((i) => i.state === 'cancelled'), 30_000, 500);
    } finally {
      session.kill();
    }
  });

  it('cancels on the first Ctrl-C with --cancel-on-interrupt', async () => {
    const session = startCliInPty(['tasks', 'run', 'runs::sleep', '--seconds', '60', '--cancel-on-interrupt'], fleet.env);
    try {
      const taskId = await taskIdOf(session);
      await waitFor('the tasks to run', () => session.output().includes('Running task runs::sleep'), 30_000);
      session.type(CTRL_C);
      assert.equal(await session.exited, 130, session.output());
      assert.doesNotMatch(session.output(), /Interrupted:/);
      assert.match(session.output(), new RegExp(`Cancelled task ${taskId}`));
      await waitFor('both nodes cancelled', async () => (await status(taskId)).items.every((i) => i.state === 'cancelled'), 30_000, 500);
    } finally {
      session.kill();
    }
  });

  it('says nothing after the Ctrl-C line and exits 130 when the run moves on, and even ends, during the download', async () => {
    // A node whose download this test holds: the run sits in its download phase until the test
    // answers, then runs and ends within the seconds the CLI waits for a second Ctrl-C.
    const agent = await TestAgent.connect(fleet.stack.addresses.scheduler, { identity: 'slow1', agents: ['bolt_tasks'], version: '0.1.0' });
    const session = startCliInPty(['tasks', 'run', 'demo::echo', '--message', 'held', '-I', 'slow1'], fleet.env);
    try {
      const download = await agent.next('download', 60_000);
      const taskId = download.taskId;
      await waitFor('the task id', () => session.output().includes(`(task id ${taskId})`), 30_000);
      session.type(CTRL_C);
      await waitFor('the Ctrl-C line', () => session.output().includes('Interrupted:'), 10_000);
      agent.send({ $case: 'downloadResult', value: { requestId: download.requestId, ok: true, downloaded: 1, error: '' } });
      await agent.next('run', 10_000);
      agent.send({ $case: 'taskStarted', value: { taskId, startTime: new Date() } });
      const result = NodeResult.fromPartial({
        host: 'slow1',
        taskId,
        state: NodeState.NODE_STATE_SUCCEEDED,
        exitcode: 0,
        completed: true,
        stdout: '{"ok":true}',
        value: { ok: true },
        runtime: 0.01,
        startTime: new Date(),
      });
      agent.send({ $case: 'taskFinished', value: TaskFinished.fromPartial({ result }) });
      assert.equal(await session.exited, 130, session.output());
      const after = session.output().slice(session.output().indexOf('Interrupted:'));
      assert.deepEqual(
        after
          .split(/\r?\n/)
          .map((l) => withoutEscapes(l).trim())
          .filter(Boolean),
        [
          `Interrupted: task ${taskId} goes on running on its nodes; watch it with 'baton tasks watch ${taskId}', cancel it with 'baton tasks cancel ${taskId}' (or press Ctrl-C again within 3 s)`,
        ],
        'no "Running task", progress or summary after the line that says the CLI is leaving',
      );
      await waitFor('the run to succeed, as the line said it would go on', async () => (await status(taskId)).summary.success, 30_000, 500);
    } finally {
      session.kill();
      agent.close();
    }
  });
});
