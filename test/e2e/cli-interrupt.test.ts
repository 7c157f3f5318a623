import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { StatusDocument } from '../../cli/status-document';
import { runCli } from '../helpers/cli';
import { cliEnvironmentpath } from '../helpers/cli-environment';
import { useDevStack } from '../helpers/dev-stack';
import { startCliInPty, type PtySession } from '../helpers/pty';
import { waitFor } from '../helpers/wait';

const CTRL_C = '\x03';

/** The task id of the first line, printed before any node has finished. */
async function taskIdOf(session: PtySession): Promise<string> {
  const line = await waitFor('the task id', () => /Attempting to download and run task runs::sleep on 2 nodes \(task id ([0-9a-f]{32})\)/.exec(session.output()), 60_000, 50);
  return line![1];
}

describe('Ctrl-C while baton tasks run waits, on a terminal', () => {
  const fleet = useDevStack({ agents: 2, environmentpath: cliEnvironmentpath() });
  const status = async (taskId: string): Promise<StatusDocument> => JSON.parse((await runCli(['tasks', 'status', taskId, '--json'], fleet.env)).stdout) as StatusDocument;

  it('prints the task id at once; one Ctrl-C says the run goes on and how to watch or cancel it, and the run does go on', async () => {
    const session = startCliInPty(['tasks', 'run', 'runs::sleep', '--seconds', '4'], fleet.env);
    try {
      const taskId = await taskIdOf(session);
      session.type(CTRL_C);
      assert.equal(await session.exited, 130, session.output());
      const lines = session.output().split(/\r?\n/).filter((l) => l.startsWith('Interrupted'));
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
});
