import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NodeState, type NodeResult } from '../gen/baton/v1/run';
import { newTaskId } from '../lib/task-id';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../lib/logger';
import { Agent, splitForHello } from './agent';
import { resolveAgentOptions, type AgentConfig } from './agent-options';

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
    assert.deepEqual(
      hello.map((m) => m.result?.taskId),
      results.slice(0, 2).map((r) => r.taskId),
    );
    assert.deepEqual(
      later.map((m) => m.result?.taskId),
      results.slice(2).map((r) => r.taskId),
      'order kept: the small one waits too',
    );
  });

  it('always puts the first result in the Hello, however large', () => {
    const { hello, later } = splitForHello([result(5000)], 1000);
    assert.equal(hello.length, 1);
    assert.equal(later.length, 0);
  });
});

describe('Agent retention', () => {
  it('sweeps acknowledged runs and unused cache files older than retention-s, and keeps the rest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-agent-sweep-'));
    const config: AgentConfig = {
      identity: 'n1',
      'scheduler-address': '127.0.0.1:1',
      insecure: true,
      'cache-dir': join(dir, 'cache'),
      'spool-dir': join(dir, 'spool'),
      classes: '',
      'facts-poll-interval-s': 30,
      'scheduler-timeout-s': 0,
      'heartbeat-interval-s': 15,
      'max-concurrent-tasks': 4,
      'max-output-bytes': 1024 * 1024,
      'retention-s': 3600,
      'retention-sweep-interval-s': 3600,
      'log-level': 'silent',
    };
    mkdirSync(join(dir, 'cache'));
    mkdirSync(join(dir, 'spool'));
    const agent = new Agent(resolveAgentOptions(config), { log: createLogger('agent-test', 'silent') });
    const [acked, unacked] = [result(1), result(1)];
    for (const r of [acked, unacked]) {
      await agent.spool.create(r.taskId);
      await agent.spool.writeResult(r);
    }
    await agent.spool.markAcked(acked.taskId);
    writeFileSync(join(dir, 'cache', 'b'.repeat(64)), 'old');
    assert.deepEqual(await agent.sweep(), { runs: 0, files: 0 }, 'nothing is older than retention-s yet');
    assert.deepEqual(await agent.sweep(Date.now() + 2 * 3600_000), { runs: 1, files: 1 });
    assert.deepEqual(await agent.spool.taskIds(), [unacked.taskId]);
    await agent.stop();
  });
});
