import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NodeState, RunState, type NodeResult, type Run } from '../gen/baton/v1/run';
import { computeRunStatus, pendingNodeResult } from './run-status';

const TASK_ID = 'a'.repeat(32);

function makeRun(nodes: string[]): Run {
  return {
    taskId: TASK_ID,
    task: 'acme::deploy',
    environment: 'production',
    caller: 'user=alice',
    state: RunState.RUN_STATE_RUNNING,
    nodes,
    filter: undefined,
    inputJson: '{}',
    createTime: new Date(0),
    endTime: undefined,
    error: '',
    noop: false,
    requestId: '',
  };
}

function result(run: Run, host: string, fields: Partial<NodeResult>): NodeResult {
  return { ...pendingNodeResult(run, host), ...fields };
}

const done = (exitcode: number, runtime: number): Partial<NodeResult> => ({
  state: exitcode === 0 ? NodeState.NODE_STATE_SUCCEEDED : NodeState.NODE_STATE_FAILED,
  completed: true,
  exitcode,
  runtime,
  statuscode: exitcode === 0 ? 0 : 1,
});

describe('computeRunStatus', () => {
  it('counts a mixed run like mco tasks status, with Choria defects fixed', () => {
    const run = makeRun(['e', 'd', 'c', 'b', 'a']);
    const results = new Map([
      ['a', result(run, 'a', done(0, 2))],
      ['b', result(run, 'b', done(1, 4))],
      ['c', result(run, 'c', { state: NodeState.NODE_STATE_FAILED, statuscode: 5, statusmsg: 'could not spawn', exitcode: -1 })],
      ['d', result(run, 'd', { state: NodeState.NODE_STATE_NO_RESPONSE })],
      ['e', result(run, 'e', { state: NodeState.NODE_STATE_RUNNING, runtime: 3 })],
    ]);
    const status = computeRunStatus(run, results);
    assert.deepEqual(
      status.items.map((r) => r.host),
      ['a', 'b', 'c', 'd', 'e'],
    );
    assert.deepEqual(status.stats, {
      names: ['acme::deploy'],
      callers: ['user=alice'],
      completed: 2, // the exit-1 node counts as completed (Choria: failed only)
      running: 1,
      taskNotKnown: 0,
      wrapperFailure: 1,
      success: 1,
      failed: 3,
      averageRuntime: 3, // (2 + 4 + 3) / 3: the exit-1 node's runtime is included
      noresponses: ['d'], // Choria never lists them
    });
    assert.deepEqual(status.summary, { nodes: 5, taskid: TASK_ID, completed: false, success: false });
  });

  it('reports an average runtime of 0, not NaN, when no node ran', () => {
    const run = makeRun(['a', 'b']);
    const results = new Map([
      ['a', result(run, 'a', { state: NodeState.NODE_STATE_NO_RESPONSE })],
      ['b', result(run, 'b', { state: NodeState.NODE_STATE_FAILED, statuscode: 3, statusmsg: 'unknown task' })],
    ]);
    const { stats, summary } = computeRunStatus(run, results);
    assert.equal(stats.averageRuntime, 0);
    assert.equal(stats.taskNotKnown, 1);
    assert.equal(stats.failed, 2);
    assert.deepEqual(stats.noresponses, ['a']);
    assert.deepEqual(summary, { nodes: 2, taskid: TASK_ID, completed: false, success: false });
  });

  it('says completed and success when every node succeeded', () => {
    const run = makeRun(['a', 'b']);
    const results = new Map([
      ['a', result(run, 'a', done(0, 1))],
      ['b', result(run, 'b', done(0, 2))],
    ]);
    const { stats, summary } = computeRunStatus(run, results);
    assert.equal(stats.averageRuntime, 1.5);
    assert.deepEqual(summary, { nodes: 2, taskid: TASK_ID, completed: true, success: true });
  });

  it('counts a cancelled node as completed and failed', () => {
    const run = makeRun(['a']);
    const { stats } = computeRunStatus(run, new Map([['a', result(run, 'a', { state: NodeState.NODE_STATE_CANCELLED, runtime: 1 })]]));
    assert.equal(stats.completed, 1);
    assert.equal(stats.failed, 1);
    assert.equal(stats.running, 0);
    assert.equal(stats.averageRuntime, 1);
  });

  it('counts every node state: not-final ones as running, final ones as completed or failed', () => {
    const hosts = ['pending', 'downloading', 'downloaded', 'running', 'succeeded', 'exit2', 'invalid', 'silent', 'cancelled-ran', 'cancelled-unstarted'];
    const run = makeRun(hosts);
    const results = new Map<string, NodeResult>([
      ['pending', result(run, 'pending', { state: NodeState.NODE_STATE_PENDING })],
      ['downloading', result(run, 'downloading', { state: NodeState.NODE_STATE_DOWNLOADING })],
      ['downloaded', result(run, 'downloaded', { state: NodeState.NODE_STATE_DOWNLOADED })],
      ['running', result(run, 'running', { state: NodeState.NODE_STATE_RUNNING, runtime: 4, startTime: new Date(0) })],
      ['succeeded', result(run, 'succeeded', done(0, 2))],
      ['exit2', result(run, 'exit2', done(2, 6))],
      ['invalid', result(run, 'invalid', { state: NodeState.NODE_STATE_FAILED, statuscode: 4, statusmsg: 'invalid input' })],
      ['silent', result(run, 'silent', { state: NodeState.NODE_STATE_NO_RESPONSE })],
      [
        'cancelled-ran',
        result(run, 'cancelled-ran', {
          state: NodeState.NODE_STATE_CANCELLED,
          completed: true,
          exitcode: 143,
          runtime: 3,
          startTime: new Date(0),
          statuscode: 1,
        }),
      ],
      [
        'cancelled-unstarted',
        result(run, 'cancelled-unstarted', {
          state: NodeState.NODE_STATE_CANCELLED,
          statuscode: 1,
          statusmsg: 'cancelled before the task started on this node',
        }),
      ],
    ]);
    const { stats, summary } = computeRunStatus(run, results);
    assert.deepEqual(
      { completed: stats.completed, running: stats.running, success: stats.success, failed: stats.failed, noresponses: stats.noresponses },
      // running: pending, downloading, downloaded, running; completed: succeeded, exit2 (non-zero exit still completed) and both cancelled
      { completed: 4, running: 4, success: 1, failed: 5, noresponses: ['silent'] },
    );
    assert.equal(stats.success + stats.failed + stats.running, hosts.length, 'every node is counted once as success, failed or running');
    // Only nodes whose task started count towards the mean: (4 + 2 + 6 + 3) / 4.
    assert.equal(stats.averageRuntime, 3.75);
    assert.deepEqual(summary, { nodes: hosts.length, taskid: TASK_ID, completed: false, success: false });
  });

  it('never reports NaN as the average, even with every node pending or with broken runtimes', () => {
    const run = makeRun(['a', 'b', 'c']);
    assert.equal(computeRunStatus(run, new Map()).stats.averageRuntime, 0);
    const broken = new Map([
      ['a', result(run, 'a', { ...done(0, Number.NaN) })],
      ['b', result(run, 'b', { ...done(1, Number.POSITIVE_INFINITY) })],
      ['c', result(run, 'c', { ...done(0, -3) })],
    ]);
    const { stats } = computeRunStatus(run, broken);
    assert.equal(stats.averageRuntime, 0);
    assert.equal(stats.completed, 3);
  });

  it('says completed (not success) for a cancelled run once every node is final', () => {
    const run = makeRun(['a', 'b']);
    const results = new Map([
      ['a', result(run, 'a', done(0, 1))],
      ['b', result(run, 'b', { state: NodeState.NODE_STATE_CANCELLED, statuscode: 1 })],
    ]);
    const { stats, summary } = computeRunStatus(run, results);
    assert.equal(stats.averageRuntime, 1, 'the node cancelled before it started has no runtime to average');
    assert.deepEqual(summary, { nodes: 2, taskid: TASK_ID, completed: true, success: false });
  });

  it('shows a pending result for a node without one, and lists every distinct name and caller', () => {
    const run = makeRun(['a', 'b']);
    const forged = result(run, 'b', { task: 'evil::task', callerid: 'user=mallory', state: NodeState.NODE_STATE_RUNNING });
    const status = computeRunStatus(run, new Map([['b', forged]]));
    assert.deepEqual(status.items[0], pendingNodeResult(run, 'a'));
    assert.equal(status.items[0].exitcode, -1);
    assert.deepEqual(status.stats.names, ['acme::deploy', 'evil::task']);
    assert.deepEqual(status.stats.callers, ['user=alice', 'user=mallory']);
    assert.equal(status.stats.running, 2);
  });
});
