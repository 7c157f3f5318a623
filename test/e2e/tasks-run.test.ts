import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FactOperator } from '../../gen/baton/v1/filter';
import { SchedulerServiceClient } from '../../gen/baton/v1/scheduler_service';
import { makeClient, unary } from '../../lib/grpc-client';
import { freePort } from '../../lib/free-port';
import { packageRoot } from '../../lib/package-root';
import type { StatusDocument } from '../../cli/status-document';
import { runCli, type CliRun } from '../helpers/cli';
import { useDevStack } from '../helpers/dev-stack';

/**
 * The walking skeleton end to end: redis-server, the metadata, results and scheduler services
 * and three agents, each a separate process, driven through the `baton` CLI as an operator
 * would, with assertions on what the operator sees.
 */
describe('baton tasks run and status, end to end on three agents', () => {
  const fleet = useDevStack({ agents: 3 });

  const taskIdOf = (run: CliRun): string => {
    const m = /Summary for task ([0-9a-f]{32})/.exec(run.stdout);
    assert.ok(m, `no task id in:\n${run.stdout}\n${run.stderr}`);
    return m[1];
  };

  /** `baton tasks status --json`, which exits 0 when every node succeeded and 1 when one failed. */
  const status = async (taskId: string, expectedExit = 0): Promise<StatusDocument> => {
    const res = await runCli(['tasks', 'status', taskId, '--json'], fleet.env);
    assert.equal(res.code, expectedExit, res.stderr);
    return JSON.parse(res.stdout) as StatusDocument;
  };

  it('runs a task taking parameters on every node and reports each result', async () => {
    const run = await runCli(
      ['tasks', 'run', 'demo::echo', '--message', 'hello "fleet"', '--count', '2', '-I', 'node1', '-I', 'node2', '-I', 'node3'],
      fleet.env,
    );
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /Successful: 3/);
    assert.match(run.stdout, /Failed: 0/);
    const taskId = taskIdOf(run);

    const doc = await status(taskId);
    assert.deepEqual(
      doc.items.map((i) => i.host),
      ['node1', 'node2', 'node3'],
    );
    for (const item of doc.items) {
      assert.equal(item.task_id, taskId);
      assert.equal(item.task, 'demo::echo');
      assert.equal(item.exitcode, 0);
      assert.equal(item.completed, true);
      assert.equal(item.statuscode, 0);
      assert.equal((item.stdout as Record<string, unknown>).message, 'hello "fleet"');
      assert.equal(Number((item.stdout as Record<string, unknown>).count), 2);
      assert.ok(item.start_time > 0);
    }
    assert.equal(doc.stats.success, 3);
    assert.equal(doc.stats.failed, 0);
    assert.equal(doc.stats.completed, 3);
    assert.deepEqual(doc.stats.names, ['demo::echo']);
    assert.deepEqual(doc.summary, { nodes: 3, taskid: taskId, completed: true, success: true });
  });

  it('runs only on the nodes picked with -I', async () => {
    const run = await runCli(['tasks', 'run', 'demo::uptime', '-I', 'node2'], fleet.env);
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    const doc = await status(taskIdOf(run));
    assert.deepEqual(
      doc.items.map((i) => i.host),
      ['node2'],
    );
    // A task printing plain text: its stdout is the text itself (mco's _output rule).
    assert.equal(typeof doc.items[0].stdout, 'string');
    assert.ok((doc.items[0].stdout as string).length > 0);
  });

  it('reports a failing task with exit code 1 and the error per node', async () => {
    const run = await runCli(['tasks', 'run', 'demo::fail', '-I', 'node1', '-I', 'node3'], fleet.env);
    assert.equal(run.code, 1, `${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /node1\s+puppetlabs\.tasks\/task-error: The task failed with exit code 3/);
    assert.match(run.stdout, /Failed: 2/);
    const doc = await status(taskIdOf(run), 1);
    assert.equal(doc.stats.failed, 2);
    assert.equal(doc.stats.completed, 2);
    assert.equal(doc.summary.success, false);
    assert.ok(doc.items.every((i) => i.exitcode === 3 && i.statuscode === 1));
  });

  it("summarises a finished run from the run's own answer: the results service's document, without asking it", async () => {
    // Nothing listens at this results address: the summary can only come from StartRun's answer.
    const noResults = { ...fleet.env, BATON_RESULTS: `127.0.0.1:${await freePort()}` };
    for (const [task, code] of [
      ['demo::fail', 1],
      ['demo::uptime', 0],
    ] as const) {
      const run = await runCli(['tasks', 'run', task, '-I', 'node1', '-I', 'node3', '--json'], noResults);
      assert.equal(run.code, code, `${run.stdout}\n${run.stderr}`);
      const printed = JSON.parse(run.stdout) as StatusDocument;
      assert.equal(printed.summary.nodes, 2);
      assert.deepEqual(printed, await status(printed.summary.taskid, code));
    }
  });

  it('rejects bad input with one line naming the parameter, and starts nothing', async () => {
    const runsBefore = await runCli(['tasks', 'run', 'demo::echo', '--count', '2', '-I', 'node1'], fleet.env);
    assert.equal(runsBefore.code, 2);
    assert.match(runsBefore.stderr, /^baton: .*message/m);
    assert.equal(runsBefore.stderr.trim().split('\n').length, 1, runsBefore.stderr);
    assert.doesNotMatch(runsBefore.stdout, /Summary for task/);

    const mistyped = await runCli(['tasks', 'run', 'demo::echo', '--message', 'hi', '--count', 'many', '-I', 'node1'], fleet.env);
    assert.equal(mistyped.code, 2);
    assert.match(mistyped.stderr, /^baton: .*parameter 'count' expects .*Integer.*, got String/m);

    const unknown = await runCli(['tasks', 'run', 'demo::nope', '-I', 'node1'], fleet.env);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^baton: .*demo::nope.*not found/m);

    const nobody = await runCli(['tasks', 'run', 'demo::uptime', '-I', 'node9'], fleet.env);
    assert.equal(nobody.code, 3, nobody.stderr);
    assert.match(nobody.stderr, /no nodes/i);
  });

  it('indexes every agent in Redis with its identity and facts, for discovery', async () => {
    const scheduler = makeClient(SchedulerServiceClient, fleet.stack.addresses.scheduler);
    try {
      const all = await unary(scheduler, scheduler.discoverNodes, { filter: undefined, includeOffline: false });
      assert.deepEqual(
        all.nodes.map((n) => [n.identity, n.online]),
        [
          ['node1', true],
          ['node2', true],
          ['node3', true],
        ],
      );
      const web = await unary(scheduler, scheduler.discoverNodes, {
        filter: { identities: [], classes: [], agents: [], compound: [], facts: [{ fact: 'role', operator: FactOperator.FACT_OPERATOR_EQUAL, value: 'web' }] },
        includeOffline: false,
      });
      assert.deepEqual(
        web.nodes.map((n) => n.identity),
        ['node1'],
      );
      assert.equal(web.nodes[0].facts?.datacenter, 'ams1');
      assert.equal((web.nodes[0].facts?.os as { family?: string } | undefined)?.family, 'Linux');
    } finally {
      scheduler.close();
    }
  });

  it('never runs a tampered cache file: the next download replaces it with verified content', async () => {
    const script = readFileSync(join(packageRoot(), 'examples/modules/production/modules/demo/tasks/echo.sh'));
    const sha256 = createHash('sha256').update(script).digest('hex');
    const cached = join(fleet.stack.stateDir, 'node1', 'cache', sha256);
    assert.deepEqual(readFileSync(cached), script, 'node1 holds echo.sh from the first test');
    writeFileSync(cached, '#!/bin/sh\necho \'{"message": "tampered"}\'\n');

    const run = await runCli(['tasks', 'run', 'demo::echo', '--message', 'intact', '-I', 'node1'], fleet.env);
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
    const doc = await status(taskIdOf(run));
    assert.equal((doc.items[0].stdout as Record<string, unknown>).message, 'intact');
    assert.deepEqual(readFileSync(cached), script);
  });

  it('keeps no connection to the metadata service once its downloads are done', async () => {
    // node1 downloaded echo.sh again in the test before: that connection goes once idle.
    const pid = fleet.stack.agentPid('node1');
    assert.ok(pid, 'node1 runs');
    const port = Number(fleet.stack.addresses.metadata.split(':').pop());
    const deadline = Date.now() + 40_000;
    let open = connectionsTo(pid, port);
    while (open > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      open = connectionsTo(pid, port);
    }
    assert.equal(open, 0, `node1 still holds ${open} connection(s) to the metadata service 40 s after its download`);
    // Closed, not broken: the next download connects again.
    const sha256 = createHash('sha256')
      .update(readFileSync(join(packageRoot(), 'examples/modules/production/modules/demo/tasks/echo.sh')))
      .digest('hex');
    rmSync(join(fleet.stack.stateDir, 'node1', 'cache', sha256));
    const run = await runCli(['tasks', 'run', 'demo::echo', '--message', 'again', '-I', 'node1'], fleet.env);
    assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  });
});

/** Established TCP connections process `pid` holds to local port `port` (from /proc). */
function connectionsTo(pid: number, port: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // The descriptor closed meanwhile.
    }
  }
  const remotePort = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let n = 0;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // Columns: sl, local, remote, state (01 = established), ..., inode (10th).
      if (f.length > 9 && f[2].endsWith(remotePort) && f[3] === '01' && inodes.has(f[9])) n++;
    }
  }
  return n;
}
