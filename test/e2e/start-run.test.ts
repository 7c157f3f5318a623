import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { status, type ServiceError } from '@grpc/grpc-js';
import { NodeState, RunState } from '../../gen/baton/v1/run';
import { RunTaskRequest, SchedulerServiceClient, type StartRunResponse } from '../../gen/baton/v1/scheduler_service';
import { readServiceError } from '../../lib/errors';
import { makeClient, unary } from '../../lib/grpc-client';
import { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { startCli } from '../helpers/cli';
import { cliEnvironmentpath } from '../helpers/cli-environment';
import { useDevStack } from '../helpers/dev-stack';
import { waitFor } from '../helpers/wait';

/** Every message of one StartRun call, and how it ended. */
async function startRun(client: SchedulerServiceClient, run: Partial<RunTaskRequest>): Promise<{ messages: StartRunResponse[]; error?: ServiceError }> {
  const messages: StartRunResponse[] = [];
  const call = client.startRun({ run: RunTaskRequest.fromPartial(run) }, { deadline: Date.now() + 60_000 });
  call.on('data', (m: StartRunResponse) => messages.push(m));
  return new Promise((resolve) => {
    call.on('error', (error: ServiceError) => resolve({ messages, error }));
    call.on('end', () => resolve({ messages }));
  });
}

const TASK_ID_LINE = /Attempting to download and run task runs::sleep on 2 nodes \(task id ([0-9a-f]{32})\)/;

describe('StartRun: the task id first, then progress, then the answer, on one stream', () => {
  const fleet = useDevStack({
    agents: 2,
    environmentpath: cliEnvironmentpath(),
    // BATON_E2E_LOGS=info shows every process's log lines, to see why a test failed.
    logLevel: process.env.BATON_E2E_LOGS ?? 'warn',
    onStderr: (name, line) => {
      if (process.env.BATON_E2E_LOGS) process.stderr.write(`[${name}] ${line}\n`);
    },
  });
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

  /** Waits until the run's tasks started on both nodes. */
  const bothNodesRunning = (taskId: string) =>
    waitFor(
      'both nodes RUNNING',
      async () => (await unary(results, results.getRunStatus, { taskId })).items.filter((r) => r.state === NodeState.NODE_STATE_RUNNING).length === 2,
      30_000,
      50,
    );

  /** Restarts the scheduler and waits until both agents are back on it, so the next run finds them. */
  const restartScheduler = async (): Promise<void> => {
    await fleet.stack.startService('scheduler');
    await waitFor(
      'both agents online again',
      () =>
        new Promise<boolean>((resolve) =>
          scheduler.discoverNodes({ filter: undefined, includeOffline: false }, (err, res) => resolve(!err && res?.nodes.length === 2)),
        ),
      30_000,
      200,
    );
  };

  it("sends the task id and node count while the run is PENDING, every final node result as progress, then RunTask's answer", async () => {
    const { messages, error } = await startRun(scheduler, { task: 'runs::sleep', inputJson: '{"seconds": 1}', waitS: 30 });
    assert.equal(error, undefined);
    const [first, ...rest] = messages;
    assert.equal(first.update?.$case, 'started');
    const started = first.update.value;
    assert.match(started.taskId, /^[0-9a-f]{32}$/);
    assert.equal(started.nodes, 2);
    assert.equal(started.repeated, false);
    assert.equal(started.run?.state, RunState.RUN_STATE_PENDING, 'sent before any file went to a node');
    const last = rest.at(-1);
    assert.equal(last?.update?.$case, 'finished');
    assert.equal(last.update.value.taskId, started.taskId);
    assert.equal(last.update.value.run?.state, RunState.RUN_STATE_SUCCEEDED);
    assert.deepEqual(
      last.update.value.results.map((r) => [r.host, r.state]),
      [
        ['node1', NodeState.NODE_STATE_SUCCEEDED],
        ['node2', NodeState.NODE_STATE_SUCCEEDED],
      ],
    );
    const progress = rest.slice(0, -1).map((m) => (m.update?.$case === 'progress' ? m.update.value : assert.fail(`expected progress, got ${m.update?.$case}`)));
    const states = [...new Set(progress.map((p) => RunState[p.state]))];
    assert.deepEqual(states.slice(-3), ['RUN_STATE_DOWNLOADING', 'RUN_STATE_RUNNING', 'RUN_STATE_SUCCEEDED'], 'each state as the run moves on, in order');
    assert.deepEqual(progress.flatMap((p) => p.results.map((r) => r.host)).sort(), ['node1', 'node2']);
    assert.deepEqual({ ...progress.at(-1), results: [] }, { state: RunState.RUN_STATE_SUCCEEDED, nodes: 2, downloaded: 2, finished: 2, results: [] });
  });

  it('answers a repeated request id with the first run, marked repeated, and starts nothing new', async () => {
    const requestId = 'start-run-repeat-0b7e';
    const one = await startRun(scheduler, { task: 'runs::sleep', inputJson: '{"seconds": 0}', background: true, requestId });
    const two = await startRun(scheduler, { task: 'runs::sleep', inputJson: '{"seconds": 0}', background: true, requestId });
    const first = one.messages[0].update;
    const again = two.messages[0].update;
    assert.equal(first?.$case, 'started');
    assert.equal(again?.$case, 'started');
    assert.equal(again.value.taskId, first.value.taskId);
    assert.equal(again.value.repeated, true);
    const finished = two.messages.at(-1)?.update;
    assert.equal(finished?.$case, 'finished');
    assert.equal(finished.value.taskId, first.value.taskId);
  });

  it('refuses bad input as RunTask does, with INVALID_ARGUMENT naming the parameter and no message', async () => {
    const { messages, error } = await startRun(scheduler, { task: 'runs::sleep', inputJson: '{"seconds": "soon"}' });
    assert.deepEqual(messages, []);
    assert.equal(error?.code, status.INVALID_ARGUMENT);
    assert.deepEqual(
      readServiceError(error).violations.map((v) => v.field),
      ['seconds'],
    );
  });

  it('refuses an over-long field inside `run` by its path', async () => {
    const { messages, error } = await startRun(scheduler, { task: `runs::${'a'.repeat(300)}` });
    assert.deepEqual(messages, []);
    assert.equal(error?.code, status.INVALID_ARGUMENT);
    assert.match(error.details, /run\.task/);
  });

  it('ends a stream with UNAVAILABLE naming its run when the scheduler drains, and the run goes on', async () => {
    const messages: StartRunResponse[] = [];
    const call = scheduler.startRun(
      { run: RunTaskRequest.fromPartial({ task: 'runs::sleep', inputJson: '{"seconds": 2}', waitS: 60 }) },
      { deadline: Date.now() + 60_000 },
    );
    call.on('data', (m: StartRunResponse) => messages.push(m));
    const ended = new Promise<ServiceError | undefined>((resolve) => {
      call.on('error', resolve);
      call.on('end', () => resolve(undefined));
    });
    const started = await waitFor('the started message', () => (messages[0]?.update?.$case === 'started' ? messages[0].update.value : undefined), 30_000, 20);
    // Past the download gate (a drain during the gate fails the run: its agents leave), and
    // the tasks started on both nodes (a run command still in flight when a stream ends is lost).
    await bothNodesRunning(started.taskId);
    try {
      await fleet.stack.stopService('scheduler', 'SIGTERM');
      const error = await ended;
      assert.equal(error?.code, status.UNAVAILABLE);
      const report = readServiceError(error);
      assert.equal(report.reason, 'SCHEDULER_DRAINING');
      assert.deepEqual(report.metadata, { task_id: started.taskId });
    } finally {
      await restartScheduler();
    }
    const watch = scheduler.watchRun({ taskId: started.taskId, resumeToken: '' });
    const final = await new Promise<RunState>((resolve, reject) => {
      let state = RunState.RUN_STATE_UNSPECIFIED;
      watch.on('data', (m: { event?: { event?: { $case: string; value: { state: RunState } } } }) => {
        if (m.event?.event?.$case === 'runStateChanged') state = m.event.event.value.state;
      });
      watch.on('error', reject);
      watch.on('end', () => resolve(state));
    });
    assert.equal(final, RunState.RUN_STATE_SUCCEEDED, 'the run ends on another (here: the restarted) scheduler');
  });

  it('baton tasks run prints the task id at once, and when its scheduler is killed mid-run follows the run to its end and reports it', async () => {
    const cli = startCli(['tasks', 'run', 'runs::sleep', '--seconds', '3', '--wait', '60'], fleet.env);
    let schedulerDown = false;
    try {
      const taskId = (await waitFor('the task id line', () => TASK_ID_LINE.exec(cli.output().stdout) ?? undefined, 60_000, 50))[1];
      await bothNodesRunning(taskId);
      await fleet.stack.stopService('scheduler', 'SIGKILL');
      schedulerDown = true;
      // The CLI follows the run meanwhile; the results come back once the agents re-send them to a scheduler.
      await waitFor('the CLI to say it follows the run elsewhere', () => cli.output().stderr.includes(`task ${taskId} goes on`), 30_000, 50);
      await restartScheduler();
      schedulerDown = false;
      const code = await cli.exited;
      const { stdout, stderr } = cli.output();
      assert.equal(code, 0, `${stdout}\n${stderr}`);
      assert.match(stderr, /The connection to the scheduler broke/);
      assert.match(stdout, new RegExp(`Summary for task ${taskId}`));
      assert.match(stdout, /Successful: 2\n/);
    } finally {
      cli.kill();
      if (schedulerDown) await restartScheduler();
    }
  });
});
