import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ResultsServiceClient, type GetRunStatusResponse, type WatchRunEventsResponse } from '../../gen/baton/v1/results_service';
import { NodeState, RunState, type NodeResult } from '../../gen/baton/v1/run';
import { RunTaskRequest, SchedulerServiceClient, type RunTaskResponse } from '../../gen/baton/v1/scheduler_service';
import { makeClient, unary } from '../../lib/grpc-client';
import { packageRoot } from '../../lib/package-root';
import { runCli } from '../helpers/cli';
import { useDevStack } from '../helpers/dev-stack';
import { waitFor } from '../helpers/wait';
import { isFinalNodeState } from '../../lib/run-states';

/**
 * Faults lose nothing, done for real: redis-server (with AOF, as in
 * production), the metadata, results and scheduler services and three agents, each its own
 * process, running the real `runs::sleep` fixture script. Each fault strikes while tasks run,
 * and the outcome is read as a user reads it: the run's status from the results service (or
 * `baton tasks status --json`) and its event log from the start.
 */

const NODES = ['node1', 'node2', 'node3'];
/** Generous: six helpers share two cores. */
const SETTLE_MS = 30_000;
/** The longest kernel tick (HZ=100), in seconds: how far a file's timestamp may lag the clock. */
const FILE_TIME_TICK_S = 0.01;

describe('faults lose nothing', () => {
  /** Every log line of every process, to wait for what a process reports (never for a fixed time). */
  const lines: Array<{ name: string; line: string }> = [];
  const fleet = useDevStack({
    agents: NODES.length,
    environmentpath: join(packageRoot(), 'test', 'fixtures', 'modules'),
    persistRedis: true,
    // BATON_E2E_LOGS=info shows every process's log lines, to see why a fault test failed.
    logLevel: process.env.BATON_E2E_LOGS ?? 'warn',
    onStderr: (name, line) => {
      lines.push({ name, line });
      if (process.env.BATON_E2E_LOGS) process.stderr.write(`[${name}] ${line}\n`);
    },
  });

  /** Waits until the scheduler has logged, since `from`, that it could not store the result of each of `nodes` (the fault really struck a result). */
  const schedulerCouldNotStore = (taskId: string, from: number, nodes = NODES) =>
    waitFor(
      'the scheduler to fail to store every result',
      () =>
        nodes.every((n) =>
          lines
            .slice(from)
            .some((l) => l.name === 'scheduler' && l.line.includes('could not record a result') && l.line.includes(`"node":"${n}"`) && l.line.includes(taskId)),
        ),
      SETTLE_MS,
      100,
    );
  let scheduler: SchedulerServiceClient;
  let results: ResultsServiceClient;

  before(() => {
    scheduler = makeClient(SchedulerServiceClient, fleet.stack.addresses.scheduler);
    results = makeClient(ResultsServiceClient, fleet.stack.addresses.results);
  });
  after(() => {
    scheduler.close();
    results.close();
  });

  const runSleep = (seconds: number, extra: Partial<RunTaskRequest> = {}): Promise<RunTaskResponse> =>
    unary(scheduler, scheduler.runTask, RunTaskRequest.fromPartial({ task: 'runs::sleep', inputJson: JSON.stringify({ seconds }), ...extra }), {
      deadlineMs: 60_000,
    });
  const runStatus = (taskId: string): Promise<GetRunStatusResponse> => unary(results, results.getRunStatus, { taskId });
  const spoolFile = (node: string, taskId: string, file: string): string => join(fleet.stack.agentDir(node), 'spool', taskId, file);
  const readSpool = (node: string, taskId: string, file: string): string | undefined => {
    try {
      return readFileSync(spoolFile(node, taskId, file), 'utf8');
    } catch {
      return undefined;
    }
  };

  /** Starts a background sleep on every node and returns once each node's wrapper runs it and the run shows every node RUNNING. */
  const startSleeping = async (seconds: number): Promise<string> => {
    const { taskId } = await runSleep(seconds, { background: true });
    await waitFor('every wrapper to record its pid', () => NODES.every((n) => readSpool(n, taskId, 'wrapper_pid')?.trim()), SETTLE_MS);
    await waitFor(
      'every node to be RUNNING',
      async () => (await runStatus(taskId)).items.every((r) => r.state === NodeState.NODE_STATE_RUNNING),
      SETTLE_MS,
      100,
    );
    return taskId;
  };

  /** Waits until every node's task has exited (its wrapper wrote the exit status). */
  const tasksExited = (taskId: string, nodes = NODES) =>
    waitFor('every task to exit under its wrapper', () => nodes.every((n) => readSpool(n, taskId, 'exitcode') === '0'), SETTLE_MS);

  /** Waits for the run to be SUCCEEDED and returns its status. */
  const succeeded = (taskId: string): Promise<GetRunStatusResponse> =>
    waitFor(
      `run ${taskId} to succeed`,
      async () => {
        const s = await runStatus(taskId);
        return s.run?.state === RunState.RUN_STATE_SUCCEEDED ? s : undefined;
      },
      SETTLE_MS,
      200,
    );

  /** The final node results in the run's event log, read from its start (WatchRunEvents, no follow). */
  const finalEvents = (taskId: string): Promise<NodeResult[]> =>
    new Promise((resolve, reject) => {
      const out: NodeResult[] = [];
      const call = results.watchRunEvents({ taskId, resumeToken: '', follow: false });
      call.on('data', (res: WatchRunEventsResponse) => {
        const e = res.event?.event;
        if (e?.$case === 'nodeResult' && isFinalNodeState(e.value.state)) out.push(e.value);
      });
      call.on('error', reject);
      call.on('end', () => resolve(out));
    });

  /** Every node succeeded, each result is stored once, the event log has each node's final result once, every agent saw its ack. */
  const expectEveryResultOnce = async (taskId: string, seconds: number): Promise<void> => {
    const status = await succeeded(taskId);
    // A runtime of the whole sleep shows the result is that of the task's one execution. Its end
    // is the exit status file's modification time, which the kernel may stamp from its coarse
    // clock, up to a tick (1-10 ms) behind the clock the agent read the start from.
    assert.deepEqual(
      status.items.map((r) => [r.host, NodeState[r.state], r.exitcode, r.completed, r.runtime >= seconds - FILE_TIME_TICK_S]),
      NODES.map((n) => [n, 'NODE_STATE_SUCCEEDED', 0, true, true]),
    );
    assert.equal(status.stats?.success, NODES.length);
    assert.equal(status.stats?.completed, NODES.length);
    assert.equal(status.stats?.running, 0);
    assert.equal(status.summary?.nodes, NODES.length);
    const finals = await finalEvents(taskId);
    assert.deepEqual(finals.map((r) => r.host).sort(), NODES, 'each node has exactly one final result in the event log');
    await waitFor('every agent to record the acknowledgement', () => NODES.every((n) => readSpool(n, taskId, 'acked') !== undefined), SETTLE_MS);
  };

  it('stores every result exactly once when the scheduler is killed mid-run and started again on the same port', async () => {
    const taskId = await startSleeping(3);
    await fleet.stack.stopService('scheduler', 'SIGKILL');
    try {
      // The tasks finish while no scheduler listens: their results can only come back re-sent in
      // the agents' next Hello.
      await tasksExited(taskId);
    } finally {
      await fleet.stack.startService('scheduler');
    }
    await expectEveryResultOnce(taskId, 3);
  });

  it('reports an agent killed mid-run as disconnected, and accepts its result when it is back', async () => {
    // Long enough that node2 is surely still running when its agent dies.
    const taskId = await startSleeping(5);
    await fleet.stack.killAgent('node2');
    let back = false;
    try {
      const away = await waitFor(
        'node2 to be shown as disconnected',
        async () => {
          const s = await runStatus(taskId);
          const node2 = s.items.find((r) => r.host === 'node2');
          return node2 && /disconnected/.test(node2.statusmsg) ? s : undefined;
        },
        SETTLE_MS,
        200,
      );
      assert.equal(away.items.find((r) => r.host === 'node2')?.state, NodeState.NODE_STATE_RUNNING, 'its task goes on under the wrapper');
      // The others finish; the run waits for node2.
      await tasksExited(taskId);
      const withoutNode2 = await waitFor(
        'node1 and node3 to succeed',
        async () => {
          const s = await runStatus(taskId);
          return s.stats?.success === 2 ? s : undefined;
        },
        SETTLE_MS,
        200,
      );
      assert.equal(withoutNode2.run?.state, RunState.RUN_STATE_RUNNING);
      // What an operator sees meanwhile.
      const cli = await runCli(['tasks', 'status', taskId, '--json'], fleet.env);
      const doc = JSON.parse(cli.stdout) as { items: Array<{ host: string; state: string; statusmsg: string }>; stats: { running: number } };
      const shown = doc.items.find((i) => i.host === 'node2');
      assert.equal(shown?.state, 'running');
      assert.match(shown?.statusmsg ?? '', /agent disconnected/);
      assert.equal(doc.stats.running, 1);

      await fleet.stack.startAgent(2);
      back = true;
    } finally {
      // The later tests need all three agents even when this one failed half-way.
      if (!back) await fleet.stack.startAgent(2);
    }
    await expectEveryResultOnce(taskId, 5);
  });

  it('rides out a Redis restart, idle and mid-run, without restarting any Baton process', async () => {
    await fleet.stack.restartRedis();
    const first = await runSleep(0, { waitS: 30 });
    assert.equal(first.run?.state, RunState.RUN_STATE_SUCCEEDED, JSON.stringify(first.results));
    assert.deepEqual(
      first.results.map((r) => r.host),
      NODES,
      'discovery still finds every agent',
    );

    const taskId = await startSleeping(3);
    const from = lines.length;
    await fleet.stack.stopRedis();
    try {
      // The results arrive while Redis is down: the scheduler must keep them until it can store them.
      await tasksExited(taskId);
      await schedulerCouldNotStore(taskId, from);
    } finally {
      await fleet.stack.startRedis();
    }
    await expectEveryResultOnce(taskId, 3);
    // Down longer than the replica lease (a loaded machine), the scheduler fenced itself and
    // ended the agents' streams; they come back by themselves once it holds a lease again.
    await waitFor(
      'every agent to be online again',
      async () => {
        const found = await runCli(['discover', '--json'], fleet.env);
        return found.code === 0 && NODES.every((n) => found.stdout.includes(`"${n}"`));
      },
      SETTLE_MS,
      500,
    );

    const after = await runSleep(0, { waitS: 30 });
    assert.equal(after.run?.state, RunState.RUN_STATE_SUCCEEDED, JSON.stringify(after.results));
    assert.deepEqual(
      after.results.map((r) => r.host),
      NODES,
    );
  });

  it('loses no event when the results service restarts mid-run', async () => {
    const taskId = await startSleeping(3);
    const from = lines.length;
    await fleet.stack.stopService('results', 'SIGKILL');
    try {
      // The results arrive while no results service answers.
      await tasksExited(taskId);
      await schedulerCouldNotStore(taskId, from);
    } finally {
      await fleet.stack.startService('results');
    }
    await expectEveryResultOnce(taskId, 3);
  });
});
