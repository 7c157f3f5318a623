import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import { ResultsServiceClient, type GetRunStatusResponse } from '../../gen/baton/v1/results_service';
import { NodeState, RunState } from '../../gen/baton/v1/run';
import { RunTaskRequest, SchedulerServiceClient } from '../../gen/baton/v1/scheduler_service';
import type { StartedChild } from '../../lib/child-process';
import { makeClient, unary } from '../../lib/grpc-client';
import { packageRoot } from '../../lib/package-root';
import { RedisKeys } from '../../lib/redis';
import { useDevStack } from '../helpers/dev-stack';
import { executions } from '../helpers/executions';
import { waitFor } from '../helpers/wait';

/**
 * Runs owned by Redis, for real: redis-server, the metadata and results services, the scheduler
 * (and a second scheduler replica on the same Redis) and three agents, each its own process,
 * running the real `once::count` fixture, which appends a line per execution to a log so that
 * every node's executions are counted. The scheduler is killed with SIGKILL during the download
 * gate and during a later batch and started again; an agent is killed and started again during
 * the download gate; a run is cancelled through the other replica; a replica coordinating a
 * foreground run is stopped (SIGSTOP) until the stack's scheduler took the run over and ended it;
 * an agent is killed and never comes back.
 */

const NODES = ['node1', 'node2', 'node3'];
/** Generous: several helpers share two cores. */
const SETTLE_MS = 60_000;
/** Short lease and lost-agent time, so that takeovers and lost agents happen within a test. */
const LEASE_S = 2;
const AGENT_LOST_AFTER_S = 4;

describe('runs owned by Redis', () => {
  /** The stderr lines of every process of the stack and of the extra replicas, by name, for the cases to look at. */
  const stderr = new Map<string, string[]>();
  const logLine = (name: string, line: string) => {
    const lines = stderr.get(name) ?? [];
    lines.push(line);
    stderr.set(name, lines);
    if (process.env.BATON_E2E_LOGS) process.stderr.write(`[${name}] ${line}\n`);
  };
  const fleet = useDevStack({
    agents: NODES.length,
    environmentpath: join(packageRoot(), 'test', 'fixtures', 'modules'),
    logLevel: process.env.BATON_E2E_LOGS ?? 'warn',
    onStderr: (name, line) => logLine(name, line),
    serviceArgs: { scheduler: ['--run-lease-s', String(LEASE_S), '--agent-lost-after-s', String(AGENT_LOST_AFTER_S)] },
  });
  let scheduler: SchedulerServiceClient;
  let results: ResultsServiceClient;
  let redis: Redis;
  let logDir: string;
  const keys = new RedisKeys('baton');

  before(() => {
    scheduler = makeClient(SchedulerServiceClient, fleet.stack.addresses.scheduler);
    results = makeClient(ResultsServiceClient, fleet.stack.addresses.results);
    redis = new Redis(fleet.stack.addresses.redis);
    logDir = mkdtempSync(join(tmpdir(), 'baton-takeover-'));
  });
  after(async () => {
    scheduler.close();
    results.close();
    await redis.quit();
    rmSync(logDir, { recursive: true, force: true });
  });

  let runs = 0;
  /** A fresh execution log for one run. */
  const newLog = () => join(logDir, `run-${++runs}.log`);

  const runCount = (seconds: number, log: string, extra: Partial<RunTaskRequest> = {}, client = scheduler) =>
    unary(client, client.runTask, RunTaskRequest.fromPartial({ task: 'once::count', inputJson: JSON.stringify({ seconds, log }), ...extra }), {
      deadlineMs: 60_000,
    });
  const runStatus = (taskId: string): Promise<GetRunStatusResponse> => unary(results, results.getRunStatus, { taskId });

  /** The newest run of once::count, once it exists. */
  const newestRun = (after: Set<string>) =>
    waitFor(
      'the run to be created',
      async () => (await unary(results, results.listRuns, { pageSize: 10, pageToken: '', task: 'once::count' })).runs.find((r) => !after.has(r.taskId)),
      SETTLE_MS,
      100,
    );
  const knownRuns = async () =>
    new Set((await unary(results, results.listRuns, { pageSize: 100, pageToken: '', task: 'once::count' })).runs.map((r) => r.taskId));

  /** Waits for the run to reach a final state and returns its status. */
  const finalStatus = (taskId: string, state: RunState): Promise<GetRunStatusResponse> =>
    waitFor(
      `run ${taskId} to be ${RunState[state]}`,
      async () => {
        const s = await runStatus(taskId);
        return s.run?.state === state ? s : undefined;
      },
      SETTLE_MS,
      200,
    );

  /**
   * True once no scheduler holds orchestration state for the run (its coordination is over): no
   * entry in the active set, and none of its keys, the command with its input among them.
   */
  const coordinationOver = async (taskId: string) =>
    (await redis.zscore(keys.activeRuns(), taskId)) === null &&
    (await redis.exists(keys.runOrchestration(taskId), keys.runLease(taskId), keys.runPlan(taskId), keys.runCommand(taskId))) === 0;

  /** Pids of the processes whose command line holds `needle` (an agent's spool directory). */
  const pidsWith = (needle: string): number[] =>
    readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').includes(needle);
        } catch {
          return false;
        }
      })
      .map(Number);
  const agentPid = (node: string): number => {
    const [pid] = pidsWith(join(fleet.stack.agentDir(node), 'spool'));
    assert.ok(pid, `the agent process of ${node}`);
    return pid;
  };

  /**
   * A second scheduler replica on the same Redis, logging as `name`. Every agent was welcomed by
   * the stack's scheduler before it started, so the replica holds no agent's stream: what it
   * sends to the nodes goes through the stack's scheduler.
   */
  const startReplica = async (name = 'replica', extraArgs: string[] = []): Promise<{ replica: StartedChild; client: SchedulerServiceClient }> => {
    const { address, child } = await fleet.stack.startExtraScheduler(name, ['--run-lease-s', String(LEASE_S), ...extraArgs]);
    return { replica: child, client: makeClient(SchedulerServiceClient, address) };
  };

  const expectEachRanOnce = async (taskId: string, log: string) => {
    const status = await finalStatus(taskId, RunState.RUN_STATE_SUCCEEDED);
    assert.deepEqual(
      status.items.map((r) => [r.host, NodeState[r.state]]),
      NODES.map((n) => [n, 'NODE_STATE_SUCCEEDED']),
    );
    assert.deepEqual(executions(log), Object.fromEntries(NODES.map((n) => [n, 1])), 'every node ran the task exactly once');
    await waitFor('the coordination to end', () => coordinationOver(taskId), SETTLE_MS, 100);
  };

  it('resumes a run whose scheduler was killed during the download gate: every node runs it once', async () => {
    const log = newLog();
    const known = await knownRuns();
    // node3's agent is frozen: it holds the gate open (it cannot answer the download) while the scheduler dies.
    const frozen = agentPid('node3');
    process.kill(frozen, 'SIGSTOP');
    let thawed = false;
    try {
      const call = runCount(0, log, { background: true }).catch((err: Error) => err);
      const run = await newestRun(known);
      await waitFor('the run to be DOWNLOADING', async () => (await runStatus(run.taskId)).run?.state === RunState.RUN_STATE_DOWNLOADING, SETTLE_MS, 100);
      await fleet.stack.stopService('scheduler', 'SIGKILL');
      assert.ok((await call) instanceof Error, 'the RunTask call ended with the scheduler');
      process.kill(frozen, 'SIGCONT');
      thawed = true;
      await fleet.stack.startService('scheduler');
      await expectEachRanOnce(run.taskId, log);
    } finally {
      if (!thawed) process.kill(frozen, 'SIGCONT');
      await fleet.stack.startService('scheduler');
    }
  });

  it('waits for an agent restarted during the download gate, with one scheduler: the run succeeds, every node runs it once', async () => {
    const log = newLog();
    const known = await knownRuns();
    // node3's agent is frozen so that the gate is still open when it restarts (an upgrade, a crash).
    process.kill(agentPid('node3'), 'SIGSTOP');
    let restarted = false;
    try {
      const call = runCount(0, log).catch((err: Error) => err);
      const run = await newestRun(known);
      await waitFor('the run to be DOWNLOADING', async () => (await runStatus(run.taskId)).run?.state === RunState.RUN_STATE_DOWNLOADING, SETTLE_MS, 100);
      await fleet.stack.killAgent('node3');
      await fleet.stack.startAgent(3);
      restarted = true;
      const reply = await call;
      if (reply instanceof Error) assert.fail(`the RunTask call failed: ${reply.message}`);
      assert.equal(reply.run?.state, RunState.RUN_STATE_SUCCEEDED);
      await expectEachRanOnce(run.taskId, log);
    } finally {
      if (!restarted) {
        await fleet.stack.killAgent('node3');
        await fleet.stack.startAgent(3);
      }
    }
  });

  it('resumes a batched run whose scheduler was killed during batch 2 of 3: later batches go on, every node runs it once', async () => {
    const log = newLog();
    const first = await runCount(2, log, { background: true, batchSize: 1 });
    await waitFor('batch 2 (node2) to run', () => executions(log).node2 === 1, SETTLE_MS, 50);
    assert.equal(executions(log).node3, undefined, 'batch 3 waits for batch 2');
    await fleet.stack.stopService('scheduler', 'SIGKILL');
    await fleet.stack.startService('scheduler');
    await expectEachRanOnce(first.taskId, log);
  });

  it('resumes a batched run whose scheduler was killed during the sleep between batches: the next batch comes after the sleep', async () => {
    const log = newLog();
    const sleepS = 4;
    const first = await runCount(0, log, { background: true, batchSize: 2, batchSleepS: sleepS });
    // Batch 1 is node1 and node2; the run sleeps once both are final.
    await waitFor('batch 1 to finish', async () => (await runStatus(first.taskId)).stats?.success === 2, SETTLE_MS, 50);
    const finishedAt = Date.now();
    await waitFor('the run to sleep', async () => (await redis.hget(keys.runOrchestration(first.taskId), 'phase')) === 'SLEEPING', SETTLE_MS, 20);
    await fleet.stack.stopService('scheduler', 'SIGKILL');
    await fleet.stack.startService('scheduler');
    await waitFor('batch 2 (node3) to run', () => executions(log).node3 === 1, SETTLE_MS, 50);
    assert.ok(Date.now() - finishedAt >= sleepS * 1000 - 500, 'the sleep between batches was kept across the takeover');
    await expectEachRanOnce(first.taskId, log);
  });

  it('stops every later batch of a run coordinated by one scheduler when another replica cancels it', async () => {
    const { replica, client: other } = await startReplica();
    try {
      const log = newLog();
      const { taskId } = await runCount(3, log, { background: true, batchSize: 1 });
      await waitFor('batch 1 (node1) to run', () => executions(log).node1 === 1, SETTLE_MS, 50);
      const { nodes: signalled } = await unary(other, other.cancelRun, { taskId });
      // Every node's stream is held by the first scheduler: the cancel reaches them through it
      // (node1's task is stopped; the others never got the run command).
      assert.deepEqual(signalled, ['node1', 'node2', 'node3']);
      const cancelled = await finalStatus(taskId, RunState.RUN_STATE_CANCELLED);
      assert.deepEqual(
        cancelled.items.filter((r) => r.host !== 'node1').map((r) => [r.host, NodeState[r.state], r.statusmsg]),
        [
          ['node2', 'NODE_STATE_CANCELLED', 'cancelled before the task started on this node'],
          ['node3', 'NODE_STATE_CANCELLED', 'cancelled before the task started on this node'],
        ],
      );
      // The first scheduler coordinates the run: it stops once it sees the flag, and without it
      // would send batch 2 as soon as node1's task ends.
      await waitFor(
        'node1 to be stopped',
        async () => (await runStatus(taskId)).items.find((r) => r.host === 'node1')?.state === NodeState.NODE_STATE_CANCELLED,
        SETTLE_MS,
        200,
      );
      await waitFor('the coordination to end', () => coordinationOver(taskId), SETTLE_MS, 100);
      assert.deepEqual(executions(log), { node1: 1 }, 'no later batch ran');
      for (const n of ['node2', 'node3']) assert.equal(existsSync(join(fleet.stack.agentDir(n), 'spool', taskId)), false, `${n} never got the run command`);
    } finally {
      other.close();
      await replica.stop();
    }
  });

  it('answers a foreground RunTask with the run another replica took over and ended while its scheduler was stopped', async (t) => {
    // The coordinator is a replica that holds no agent's stream, so the stack's scheduler, which
    // holds them all, can take the run over and end it while the coordinator is stopped. A
    // stopped coordinator holding the streams would hold the run still; once going again, its
    // next step would come before the other replica's and only find it fenced at the send, which
    // is no failure. Its replica lease outlives the stop: this case is about the run's lease.
    const { replica: stalled, client } = await startReplica('stalled', ['--replica-lease-s', '30']);
    const stopped = new Set<number>();
    const stop = (pid: number) => {
      process.kill(pid, 'SIGSTOP');
      stopped.add(pid);
    };
    const resume = (pid: number) => {
      if (stopped.delete(pid)) process.kill(pid, 'SIGCONT');
    };
    try {
      const log = newLog();
      const known = await knownRuns();
      // node3's agent is frozen: it holds the gate open until the run is taken over.
      const frozen = agentPid('node3');
      stop(frozen);
      const call = runCount(0, log, {}, client).then(
        (response) => ({ response }),
        (err: Error) => ({ err }),
      );
      const run = await newestRun(known);
      await waitFor('the run to be DOWNLOADING', async () => (await runStatus(run.taskId)).run?.state === RunState.RUN_STATE_DOWNLOADING, SETTLE_MS, 100);
      const [coordinator] = await redis.hmget(keys.runOrchestration(run.taskId), 'coordinator');
      assert.ok(coordinator, 'the run has a coordinator');
      stop(stalled.child.pid!);
      const stoppedAt = Date.now();
      await waitFor(
        "the stack's scheduler to take the run over",
        async () => {
          const [now, epoch] = await redis.hmget(keys.runOrchestration(run.taskId), 'coordinator', 'epoch');
          return now !== null && now !== coordinator && Number(epoch) > 1;
        },
        SETTLE_MS,
        100,
      );
      // The gate opens on the stack's scheduler, which runs the task and ends the run; the stopped
      // coordinator's own gate then opens too, and its next step (RUNNING) fails on a finished run.
      resume(frozen);
      await finalStatus(run.taskId, RunState.RUN_STATE_SUCCEEDED);
      resume(stalled.child.pid!);
      t.diagnostic(`the coordinator was stopped for ${Date.now() - stoppedAt} ms (run lease ${LEASE_S} s)`);
      const outcome = await call;
      assert.ok('response' in outcome, `RunTask answered, not failed: ${'err' in outcome ? outcome.err.message : ''}`);
      assert.equal(outcome.response.run?.state, RunState.RUN_STATE_SUCCEEDED);
      assert.deepEqual(
        outcome.response.results.map((r) => [r.host, NodeState[r.state]]),
        NODES.map((n) => [n, 'NODE_STATE_SUCCEEDED']),
      );
      await expectEachRanOnce(run.taskId, log);
      assert.ok(
        (stderr.get('stalled') ?? []).some((line) => line.includes('a step of the run failed after another scheduler took the run over; it goes on there')),
        'the stopped scheduler says the run went on elsewhere',
      );
    } finally {
      for (const pid of [...stopped]) resume(pid);
      client.close();
      await stalled.stop();
    }
  });

  it('records a node whose agent is gone for good NO_RESPONSE "agent lost" so the run ends, and takes its real result when it is back', async () => {
    const log = newLog();
    const { taskId } = await runCount(4, log, { background: true });
    await waitFor('every node to run', () => NODES.every((n) => executions(log)[n] === 1), SETTLE_MS, 50);
    await fleet.stack.killAgent('node2');
    let back = false;
    try {
      const ended = await finalStatus(taskId, RunState.RUN_STATE_FAILED);
      const node2 = ended.items.find((r) => r.host === 'node2');
      assert.equal(node2?.state, NodeState.NODE_STATE_NO_RESPONSE);
      assert.match(node2?.statusmsg ?? '', new RegExp(`^agent lost: the agent has been gone since \\S+ \\(more than ${AGENT_LOST_AFTER_S} s\\)$`));
      assert.deepEqual(
        ended.items.filter((r) => r.host !== 'node2').map((r) => [r.host, NodeState[r.state]]),
        [
          ['node1', 'NODE_STATE_SUCCEEDED'],
          ['node3', 'NODE_STATE_SUCCEEDED'],
        ],
      );
      assert.equal(ended.stats?.running, 0);
      await waitFor('the coordination to end', () => coordinationOver(taskId), SETTLE_MS, 100);
      // The task went on under its wrapper; its agent reports the result when it is back.
      await fleet.stack.startAgent(2);
      back = true;
      const later = await waitFor(
        'node2 to be SUCCEEDED',
        async () => {
          const s = await runStatus(taskId);
          return s.items.find((r) => r.host === 'node2')?.state === NodeState.NODE_STATE_SUCCEEDED ? s : undefined;
        },
        SETTLE_MS,
        200,
      );
      assert.equal(later.items.find((r) => r.host === 'node2')?.exitcode, 0);
      assert.deepEqual(executions(log), { node1: 1, node2: 1, node3: 1 });
    } finally {
      if (!back) await fleet.stack.startAgent(2);
    }
  });
});
