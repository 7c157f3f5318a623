import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Filter } from '../../gen/baton/v1/filter';
import { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { NodeState, RunState, type NodeResult } from '../../gen/baton/v1/run';
import { RunTaskRequest, SchedulerServiceClient, type RunTaskResponse } from '../../gen/baton/v1/scheduler_service';
import { makeClient, unary } from '../../lib/grpc-client';
import { packageRoot } from '../../lib/package-root';
import { useDevStack } from '../helpers/dev-stack';
import { waitFor } from '../helpers/wait';

/**
 * The run flow end to end: redis-server, the three services and five agents as
 * separate processes, running the real `runs::sleep` fixture script, driven through the
 * scheduler's and the results service's gRPC APIs as any client would.
 */
describe('runs end to end: batches, background, request ids, cancel and waiting', () => {
  const fleet = useDevStack({ agents: 5, environmentpath: join(packageRoot(), 'test', 'fixtures', 'modules') });
  let scheduler: SchedulerServiceClient;
  let results: ResultsServiceClient;
  let pidDir = '';

  before(() => {
    scheduler = makeClient(SchedulerServiceClient, fleet.stack.addresses.scheduler);
    results = makeClient(ResultsServiceClient, fleet.stack.addresses.results);
    pidDir = mkdtempSync(join(tmpdir(), 'baton-runs-'));
  });
  after(() => {
    scheduler.close();
    results.close();
    rmSync(pidDir, { recursive: true, force: true });
  });

  const runTask = (req: Partial<RunTaskRequest>, input: Record<string, unknown>): Promise<RunTaskResponse> =>
    unary(scheduler, scheduler.runTask, RunTaskRequest.fromPartial({ task: 'runs::sleep', inputJson: JSON.stringify(input), ...req }), { deadlineMs: 60_000 });
  const runStatus = (taskId: string) => unary(results, results.getRunStatus, { taskId });
  const finalRun = (taskId: string, state: RunState) =>
    waitFor(
      `run ${taskId} to be ${RunState[state]}`,
      async () => ((await runStatus(taskId)).run?.state === state ? runStatus(taskId) : undefined),
      30_000,
      100,
    );
  const endMs = (r: NodeResult): number => r.startTime!.getTime() + r.runtime * 1000;

  it('runs batch by batch: no batch starts before every node of the previous one is final', async () => {
    const r = await runTask({ batchSize: 2, batchSleepS: 1, waitS: 60 }, { seconds: 2 });
    assert.equal(r.run?.state, RunState.RUN_STATE_SUCCEEDED, JSON.stringify(r.results));
    assert.equal(r.stillRunning, 0);
    assert.deepEqual(
      r.results.map((x) => x.host),
      ['node1', 'node2', 'node3', 'node4', 'node5'],
    );
    const batches = [r.results.slice(0, 2), r.results.slice(2, 4), r.results.slice(4)];
    for (let i = 1; i < batches.length; i++) {
      const previousEnd = Math.max(...batches[i - 1].map(endMs));
      const start = Math.min(...batches[i].map((x) => x.startTime!.getTime()));
      // A batch runs 2 s: starting batches 1 s apart without waiting would fail this.
      assert.ok(start >= previousEnd, `batch ${i + 1} started ${previousEnd - start} ms before batch ${i} was final`);
    }
  });

  it('returns at once in background, and the run completes later', async () => {
    const r = await runTask({ background: true }, { seconds: 1 });
    assert.equal(r.run?.state, RunState.RUN_STATE_RUNNING);
    assert.deepEqual(r.results, []);
    const done = await finalRun(r.taskId, RunState.RUN_STATE_SUCCEEDED);
    assert.equal(done.stats?.success, 5);
  });

  it('answers a retried request id with the first task id and starts one run only', async () => {
    const requestId = 'e2e-retry-7d1c';
    const filter = Filter.fromPartial({ identities: ['node2'] });
    const [one, two] = await Promise.all([
      runTask({ requestId, filter, background: true }, { seconds: 0 }),
      runTask({ requestId, filter, background: true }, { seconds: 0 }),
    ]);
    assert.equal(one.taskId, two.taskId);
    const retried = await runTask({ requestId, filter, waitS: 30 }, { seconds: 0 });
    assert.equal(retried.taskId, one.taskId);
    assert.equal(retried.run?.state, RunState.RUN_STATE_SUCCEEDED);
    const { runs } = await unary(results, results.listRuns, { pageSize: 500, pageToken: '' });
    assert.deepEqual(
      runs.filter((x) => x.requestId === requestId).map((x) => x.taskId),
      [one.taskId],
    );
  });

  it('cancels a batched run: running tasks are stopped for real, later batches never start, the run ends CANCELLED', async () => {
    const r = await runTask({ batchSize: 2, background: true }, { seconds: 120, pid_dir: pidDir });
    const pids = await waitFor(
      'both tasks of the first batch to write their pid',
      () => {
        const files = readdirSync(pidDir);
        return files.length === 2 ? files.map(Number) : undefined;
      },
      20_000,
    );
    await waitFor(
      'the first batch to be RUNNING',
      async () => (await runStatus(r.taskId)).items.filter((x) => x.state === NodeState.NODE_STATE_RUNNING).length === 2,
      20_000,
    );

    const { nodes } = await unary(scheduler, scheduler.cancelRun, { taskId: r.taskId });
    assert.deepEqual(nodes, ['node1', 'node2', 'node3', 'node4', 'node5']);
    const status = await waitFor(
      'every node to be CANCELLED',
      async () => {
        const s = await runStatus(r.taskId);
        return s.items.every((x) => x.state === NodeState.NODE_STATE_CANCELLED) ? s : undefined;
      },
      30_000,
      100,
    );
    assert.equal(status.run?.state, RunState.RUN_STATE_CANCELLED);
    for (const x of status.items.slice(2)) assert.equal(x.statusmsg, 'cancelled before the task started on this node');
    for (const pid of pids) {
      await waitFor(
        `task process ${pid} to be gone`,
        () => {
          try {
            process.kill(pid, 0);
            return false;
          } catch (err) {
            return (err as NodeJS.ErrnoException).code === 'ESRCH';
          }
        },
        20_000,
      );
    }
    assert.equal(readdirSync(pidDir).length, 2, 'a task of a later batch started');
  });

  it('stops waiting after wait_s, telling how many nodes still run, and the tasks finish later', async () => {
    const r = await runTask({ waitS: 1, filter: Filter.fromPartial({ identities: ['node3', 'node4'] }) }, { seconds: 3 });
    assert.equal(r.run?.state, RunState.RUN_STATE_RUNNING);
    assert.equal(r.stillRunning, 2);
    assert.deepEqual(
      r.results.map((x) => x.completed),
      [false, false],
    );
    await finalRun(r.taskId, RunState.RUN_STATE_SUCCEEDED);
  });
});
