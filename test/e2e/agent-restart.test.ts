import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DevStack } from '../../cli/dev-stack';
import { ResultsServiceClient, type WatchRunEventsResponse } from '../../gen/baton/v1/results_service';
import { NodeState, RunState, type RunEvent } from '../../gen/baton/v1/run';
import { RunTaskRequest, SchedulerServiceClient } from '../../gen/baton/v1/scheduler_service';
import { makeClient, unary } from '../../lib/grpc-client';
import { packageRoot } from '../../lib/package-root';
import { waitFor } from '../helpers/wait';
import { processAlive } from '../../lib/child-process';

/**
 * A task outlives its agent, with every part real: redis-server, the metadata, results and scheduler
 * services and one agent, each its own process. The agent is killed with SIGKILL while its task
 * sleeps; the task goes on under its wrapper; the agent started again reports the result, which
 * the results service stores exactly once.
 */

const FINAL = new Set([NodeState.NODE_STATE_SUCCEEDED, NodeState.NODE_STATE_FAILED, NodeState.NODE_STATE_CANCELLED]);

/** The task's pid from `wrapper_pid` (its first field), or undefined while it is not written. */
function taskPid(spool: string): number | undefined {
  return Number(readFileSync(join(spool, 'wrapper_pid'), 'utf8').trim().split(' ')[0]) || undefined;
}

describe('agent restart in the middle of a task', () => {
  let stack: DevStack;
  let scheduler: SchedulerServiceClient;
  let results: ResultsServiceClient;

  before(async () => {
    stack = await DevStack.start({ agents: 1, environmentpath: join(packageRoot(), 'agent', 'fixtures', 'modules') });
    scheduler = makeClient(SchedulerServiceClient, stack.addresses.scheduler);
    results = makeClient(ResultsServiceClient, stack.addresses.results);
  });
  after(async () => {
    scheduler?.close();
    results?.close();
    await stack?.stop();
  });

  /** Every event of the run so far. */
  const events = (taskId: string): Promise<RunEvent[]> =>
    new Promise((resolve, reject) => {
      const out: RunEvent[] = [];
      const call = results.watchRunEvents({ taskId, resumeToken: '', follow: false });
      call.on('data', (res: WatchRunEventsResponse) => res.event && out.push(res.event));
      call.on('error', reject);
      call.on('end', () => resolve(out));
    });

  /** Starts agentfix::sleep on the node in the background; its task id. */
  const startSleep = async (node: string): Promise<string> => {
    const request = RunTaskRequest.fromPartial({
      task: 'agentfix::sleep',
      inputJson: JSON.stringify({ seconds: 2 }),
      filter: { identities: [node] },
      background: true,
    });
    const { taskId } = await unary(scheduler, scheduler.runTask, request);
    return taskId;
  };

  /** Waits for the run to succeed and checks that its one result is stored once. */
  const expectStoredOnce = async (taskId: string, spool: string) => {
    const status = await waitFor(
      'the run to be finalised',
      async () => {
        const s = await unary(results, results.getRunStatus, { taskId });
        return s.run?.state === RunState.RUN_STATE_SUCCEEDED ? s : undefined;
      },
      15_000,
    );
    assert.equal(status.items.length, 1);
    assert.equal(status.items[0].exitcode, 0);
    assert.deepEqual(status.items[0].value, { slept: 2 });
    const finals = (await events(taskId)).filter((e) => e.event?.$case === 'nodeResult' && FINAL.has(e.event.value.state));
    assert.equal(finals.length, 1, 'one final result in the event log');
    await waitFor('the agent to record the acknowledgement', () => readFileSync(join(spool, 'acked'), 'utf8') === '');
  };

  it('keeps the task running through a SIGKILL of the agent and stores its result exactly once', async () => {
    const node = stack.agentNames[0];
    const taskId = await startSleep(node);
    const spool = join(stack.agentDir(node), 'spool', taskId);
    const pid = await waitFor('the wrapper to record its pid', () => taskPid(spool));

    await stack.killAgent(node);
    assert.ok(processAlive(pid), 'the task outlives the agent');
    await waitFor('the task to finish on its own', () => readFileSync(join(spool, 'exitcode'), 'utf8') === '0', 10_000);

    await stack.startAgent(1);
    await expectStoredOnce(taskId, spool);
  });

  it('lets the task finish under the next agent process after a clean stop (SIGTERM) mid-task', async () => {
    const node = stack.agentNames[0];
    const taskId = await startSleep(node);
    const spool = join(stack.agentDir(node), 'spool', taskId);
    const pid = await waitFor('the wrapper to record its pid', () => taskPid(spool));
    await stack.stopAgent(node);
    assert.ok(processAlive(pid), 'a clean stop leaves the task running');
    await stack.startAgent(1); // adopts the running task and reports it when it ends
    await expectStoredOnce(taskId, spool);
  });
});
