import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StatusDocument } from '../../cli/status-document';
import { runCli, type CliRun } from '../helpers/cli';
import { cliEnvironmentpath } from '../helpers/cli-environment';
import { useDevStack } from '../helpers/dev-stack';
import { waitFor } from '../helpers/wait';

const dir = mkdtempSync(join(tmpdir(), 'baton-cli-rerun-'));
const policyFile = join(dir, 'policy.yaml');
// Everything is allowed but running demo::uptime: a denial to see the CLI's exit code for.
writeFileSync(policyFile, 'rules:\n  - name: no-uptime\n    effect: deny\n    tasks: [demo::uptime]\n  - name: everything-else\n    effect: allow\n');

describe('the baton CLI: reruns, cancelled runs, exit codes', () => {
  const fleet = useDevStack({ agents: 3, environmentpath: cliEnvironmentpath(), serviceArgs: { scheduler: ['--policy-file', policyFile] } });
  const baton = (...args: string[]): Promise<CliRun> => runCli(args, fleet.env);
  const show = (r: CliRun) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
  const taskIdOf = (r: CliRun) => /\(task id ([0-9a-f]{32})\)/.exec(r.stdout)?.[1] ?? (JSON.parse(r.stdout) as StatusDocument).summary.taskid;

  it('reruns where a run failed, nodes that never answered included; success and all; nothing to rerun is exit 3', async () => {
    await fleet.stack.stopAgent('node3');
    let first: CliRun;
    try {
      await waitFor('node3 to be offline', async () => (await baton('discover', '-I', 'node3')).code === 3, 30_000, 200);
      first = await baton('tasks', 'run', 'demo::echo', '--message', 'r', '-I', 'node1,node3');
      assert.equal(first.code, 1, show(first));
      assert.match(first.stdout, /No Response: 1 \(node3\)/);
    } finally {
      await fleet.stack.startAgent(3);
    }
    const taskId = taskIdOf(first);
    await waitFor('node3 to be back', async () => (await baton('discover', '-I', 'node3')).code === 0, 30_000, 200);
    const hosts = async (...args: string[]) => {
      const r = await baton('tasks', 'run', 'demo::echo', '--message', 'again', '--json', ...args);
      assert.equal(r.code, 0, show(r));
      return (JSON.parse(r.stdout) as StatusDocument).items.map((i) => i.host);
    };
    assert.deepEqual(await hosts('--rerun', taskId), ['node3']);
    assert.deepEqual(await hosts('--rerun', taskId, 'failure'), ['node3']);
    assert.deepEqual(await hosts('--rerun', taskId, 'success'), ['node1']);
    assert.deepEqual(await hosts('--rerun', taskId, 'all'), ['node1', 'node3']);
    const ok = await baton('tasks', 'run', 'demo::echo', '--message', 'ok', '-I', 'node1', '--json');
    const nothing = await baton('tasks', 'run', 'demo::echo', '--message', 'x', '--rerun', taskIdOf(ok));
    assert.equal(nothing.code, 3, show(nothing));
    assert.match(nothing.stderr, /^baton: nothing to rerun: in run [0-9a-f]{32} every node succeeded\n$/);
  });

  it('shows a Cancelled row, and says in words that a finished run cannot be cancelled', async () => {
    const bg = await baton('tasks', 'run', 'runs::sleep', '--seconds', '60', '-I', 'node1,node2', '--background', '--json');
    const taskId = (JSON.parse(bg.stdout) as { taskid: string }).taskid;
    const state = async () =>
      (JSON.parse((await baton('tasks', 'runs', '--json')).stdout) as Array<{ taskid: string; state: string }>).find((r) => r.taskid === taskId)?.state;
    await waitFor('the tasks to run', async () => (await state()) === 'running', 30_000, 300);
    const cancel = await baton('tasks', 'cancel', taskId);
    assert.equal(cancel.code, 0, show(cancel));
    const done = await waitFor(
      'the cancelled run to be final',
      async () => {
        const s = await baton('tasks', 'status', taskId, '--summary');
        return /Cancelled: 2 \(node1, node2\)/.test(s.stdout) ? s : undefined;
      },
      30_000,
      500,
    );
    assert.match(done.stdout, /^ +Failed: 2 \(node1, node2\)\n +Cancelled: 2 \(node1, node2\)$/m);
    const again = await baton('tasks', 'cancel', taskId);
    assert.equal(again.code, 1, show(again));
    assert.equal(
      again.stderr,
      `baton: task ${taskId} has already ended (cancelled): there is nothing left to cancel; 'baton tasks status ${taskId}' shows its results\n`,
    );
  });

  it('exits 77 for a policy denial, 5 for a run that does not exist, 69 in one line for the wrong service', async () => {
    const denied = await baton('tasks', 'run', 'demo::uptime', '-I', 'node1');
    assert.equal(denied.code, 77, show(denied));
    assert.equal(denied.stderr.trimEnd().split('\n').length, 1);
    const gone = await baton('tasks', 'status', '0123456789abcdef0123456789abcdef');
    assert.equal(gone.code, 5, show(gone));
    assert.match(gone.stderr, /^baton: no run with task id 0123456789abcdef0123456789abcdef\n$/);
    const wrong = await runCli(['discover', '--scheduler', fleet.stack.addresses.metadata], fleet.env);
    assert.equal(wrong.code, 69, show(wrong));
    assert.equal(
      wrong.stderr,
      `baton: ${fleet.stack.addresses.metadata} is not the scheduler: it does not implement SchedulerService.DiscoverNodes; check --scheduler or BATON_SCHEDULER (\`baton config show\` says where it came from)\n`,
    );
  });
});
