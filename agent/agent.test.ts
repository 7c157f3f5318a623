import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NodeState, type NodeResult } from '../gen/baton/v1/run';
import { newTaskId } from '../lib/task-id';
import { splitForHello } from './agent';

function result(stdoutBytes: number): NodeResult {
  return {
    host: 'n1',
    taskId: newTaskId(),
    task: 'acme::big',
    callerid: 'user=alice',
    state: NodeState.NODE_STATE_SUCCEEDED,
    exitcode: 0,
    stdout: 'x'.repeat(stdoutBytes),
    stderr: '',
    value: {},
    completed: true,
    runtime: 1,
    startTime: new Date(),
    statuscode: 0,
    statusmsg: '',
  };
}

describe('splitForHello', () => {
  it('puts results in the Hello up to the byte budget and keeps the rest, in order, for after the Welcome', () => {
    const results = [result(400), result(400), result(400), result(10)];
    const { hello, later } = splitForHello(results, 1000);
    assert.deepEqual(hello.map((m) => m.result?.taskId), results.slice(0, 2).map((r) => r.taskId));
    assert.deepEqual(later.map((m) => m.result?.taskId), results.slice(2).map((r) => r.taskId), 'order kept: the small one waits too');
  });

  it('always puts the first result in the Hello, however large', () => {
    const { hello, later } = splitForHello([result(5000)], 1000);
    assert.equal(hello.length, 1);
    assert.equal(later.length, 0);
  });
});
