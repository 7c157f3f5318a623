import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import pino from 'pino';
import { Hello } from '../../gen/baton/v1/agent_gateway_service';
import { NodeResult, NodeState, Run, RunState } from '../../gen/baton/v1/run';
import { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { startChild } from '../../lib/child-process';
import { isFinalRunState } from '../../lib/run-states';
import { freePort } from '../../lib/free-port';
import { makeClient, unary } from '../../lib/grpc-client';
import { LISTENING_LINE } from '../../lib/main';
import { packageRoot } from '../../lib/package-root';
import { RedisKeys } from '../../lib/redis';
import { newTaskId } from '../../lib/task-id';
import { uniquePrefix, useRedisServer } from '../../test/helpers/redis';
import { waitFor } from '../../test/helpers/wait';
import {
  AgentStreamLimits,
  DEFAULT_AGENT_MESSAGE_BURST,
  MAX_INDEXED_TEXT_CHARS,
  MAX_NODE_CLASSES,
  MAX_NODE_FACT_VALUES,
  nodeDescriptionProblem,
} from './agent-stream-limits';
import { startScheduler } from './scheduler-server';
import { TestAgent } from '../../test/helpers/test-agent';

const redis = useRedisServer();

let cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

describe('AgentStreamLimits', () => {
  it('admits a burst, refuses the next message, and admits again at the sustained rate', () => {
    let now = 0;
    const limits = new AgentStreamLimits({ messagesPerS: 10, burst: 3, nowMs: () => now });
    assert.deepEqual([limits.admit(), limits.admit(), limits.admit(), limits.admit()], [true, true, true, false]);
    now += 100; // one token at 10 per second
    assert.deepEqual([limits.admit(), limits.admit()], [true, false]);
    now += 60_000; // refills up to the burst, no further
    assert.deepEqual([limits.admit(), limits.admit(), limits.admit(), limits.admit()], [true, true, true, false]);
  });

  it('names the limit in the RESOURCE_EXHAUSTED status', () => {
    const err = new AgentStreamLimits({ messagesPerS: 100, burst: 500 }).exceeded();
    assert.equal(err.code, status.RESOURCE_EXHAUSTED);
    assert.equal(err.message, 'the agent sent more than 500 messages at once or more than 100 per second; stream ended, reconnect');
  });

  it('refuses limits that could never admit a message', () => {
    assert.throws(() => new AgentStreamLimits({ messagesPerS: 0 }), /a rate > 0/);
    assert.throws(() => new AgentStreamLimits({ burst: 0 }), /a burst >= 1/);
  });
});

describe('an agent flooding its Connect stream', () => {
  it('gets its stream ended with RESOURCE_EXHAUSTED and one warn line; the result it sent before is recorded whole', async () => {
    const resultsPort = await freePort();
    const main = join(packageRoot(), 'dist', 'services', 'results', 'main.js');
    const results = await startChild(
      process.execPath,
      [main, '--insecure', '--listen', `127.0.0.1:${resultsPort}`, '--log-level', 'warn', '--redis-url', redis.url, '--key-prefix', uniquePrefix()],
      { ready: LISTENING_LINE },
    );
    cleanups.push(() => results.stop());
    const client = makeClient(ResultsServiceClient, `127.0.0.1:${resultsPort}`);
    cleanups.push(() => client.close());
    const taskId = newTaskId();
    await unary(client, client.createRun, {
      run: Run.fromPartial({ taskId, task: 'acme::x', nodes: ['web1'], state: RunState.RUN_STATE_RUNNING, caller: 'user=t' }),
    });

    const lines: string[] = [];
    const keyPrefix = uniquePrefix();
    const scheduler = await startScheduler({
      listen: '127.0.0.1:0',
      log: pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) }),
      redisUrl: redis.url,
      keyPrefix,
      metadataAddress: `127.0.0.1:${await freePort()}`,
      resultsAddress: `127.0.0.1:${resultsPort}`,
      heartbeatIntervalS: 10,
      drainGraceMs: 1_000,
    });
    cleanups.push(() => scheduler.stop());
    const agent = await TestAgent.connect(scheduler.address, { identity: 'web1' });
    cleanups.push(() => agent.close());

    const stdout = 'x'.repeat(256 * 1024);
    agent.send({
      $case: 'taskFinished',
      value: {
        result: NodeResult.fromPartial({
          host: 'web1',
          taskId,
          task: 'acme::x',
          state: NodeState.NODE_STATE_SUCCEEDED,
          completed: true,
          exitcode: 0,
          stdout,
          value: { _output: stdout },
        }),
      },
    });
    for (let i = 0; i < DEFAULT_AGENT_MESSAGE_BURST * 4; i++)
      agent.send({ $case: 'heartbeat', value: { sendTime: new Date(), runningTasks: 0, intervalS: 0 } });

    const ended = await agent.ended(30_000);
    assert.equal(ended.code, status.RESOURCE_EXHAUSTED);
    assert.match(ended.details, /^the agent sent more than 500 messages at once or more than 100 per second/);
    // The run ends just after its last result is stored (a write of its own): waiting for the
    // node's result alone can read the run still RUNNING.
    const stored = await waitFor(
      'the result to be stored and the run to end',
      async () => {
        const s = await unary(client, client.getRunStatus, { taskId });
        return s.items[0]?.completed && s.run && isFinalRunState(s.run.state) ? s : undefined;
      },
      30_000,
    );
    assert.equal(stored.items[0].stdout, stdout, 'stored whole');
    assert.equal(stored.run?.state, RunState.RUN_STATE_SUCCEEDED);
    await waitFor('the node to be marked offline', async () => (await redis.client().hget(new RedisKeys(keyPrefix).node(0, 'web1'), 'online')) !== '1', 30_000);
    assert.equal(lines.filter((l) => l.includes('over its message rate')).length, 1);
  });
});

describe('nodeDescriptionProblem', () => {
  it('accepts a facter-sized node and names the field and limit of one too large to index', () => {
    const facts = { os: { family: 'Debian' }, disks: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`sd${i}`, { size: i }])) };
    assert.equal(nodeDescriptionProblem('Hello', facts, ['role::web'], ['bolt_tasks']), undefined);
    const many = Object.fromEntries(Array.from({ length: MAX_NODE_FACT_VALUES + 1 }, (_, i) => [`f${i}`, i]));
    assert.equal(nodeDescriptionProblem('Hello', many, []), `Hello.facts has ${MAX_NODE_FACT_VALUES + 1} values; at most ${MAX_NODE_FACT_VALUES} are indexed`);
    assert.equal(
      nodeDescriptionProblem('FactsUpdate', { big: 'x'.repeat(MAX_INDEXED_TEXT_CHARS + 1) }, []),
      `FactsUpdate.facts.big is ${MAX_INDEXED_TEXT_CHARS + 1} characters; at most ${MAX_INDEXED_TEXT_CHARS} are indexed`,
    );
    assert.equal(
      nodeDescriptionProblem(
        'Hello',
        {},
        Array.from({ length: MAX_NODE_CLASSES + 1 }, (_, i) => `c${i}`),
      ),
      `Hello.classes has ${MAX_NODE_CLASSES + 1} classes; at most ${MAX_NODE_CLASSES} are indexed`,
    );
    assert.match(
      nodeDescriptionProblem('Hello', {}, ['y'.repeat(MAX_INDEXED_TEXT_CHARS + 1)]) ?? '',
      /^Hello names a class or agent 'y{40}…' \(16385 characters\); at most 16384 characters are indexed$/,
    );
  });
});

describe('an agent describing more than the index takes', () => {
  it('has its Hello refused with INVALID_ARGUMENT before anything is indexed, and a FactsUpdate too large ends its stream keeping the facts it had', async () => {
    const keyPrefix = uniquePrefix();
    const nowhere = `127.0.0.1:${await freePort()}`;
    const scheduler = await startScheduler({
      listen: '127.0.0.1:0',
      log: pino({ level: 'silent' }),
      redisUrl: redis.url,
      keyPrefix,
      metadataAddress: nowhere,
      resultsAddress: nowhere,
      heartbeatIntervalS: 10,
      drainGraceMs: 1_000,
    });
    cleanups.push(() => scheduler.stop());
    const keys = new RedisKeys(keyPrefix);
    const many = Object.fromEntries(Array.from({ length: MAX_NODE_FACT_VALUES + 1 }, (_, i) => [`f${i}`, i]));

    const refused = new TestAgent(scheduler.address);
    cleanups.push(() => refused.close());
    refused.send({ $case: 'hello', value: Hello.fromPartial({ identity: 'web1', facts: many }) });
    const refusal = await refused.ended(30_000);
    assert.equal(refusal.code, status.INVALID_ARGUMENT);
    assert.equal(refusal.details, `Hello.facts has ${MAX_NODE_FACT_VALUES + 1} values; at most ${MAX_NODE_FACT_VALUES} are indexed`);
    // The replica's own lease keys exist from its start; nothing of the node does.
    const written = (await redis.client().keys(`${keyPrefix}:*`)).filter(
      (k) => !k.startsWith(`${keyPrefix}:{replicas}:`) && !k.startsWith(`${keyPrefix}:replica:`),
    );
    assert.deepEqual(written, [], 'nothing indexed');

    const agent = await TestAgent.connect(scheduler.address, { identity: 'web2', facts: { role: 'web' } });
    cleanups.push(() => agent.close());
    agent.send({ $case: 'factsUpdate', value: { facts: many, classes: [] } });
    const ended = await agent.ended(30_000);
    assert.equal(ended.code, status.INVALID_ARGUMENT);
    assert.equal(ended.details, `FactsUpdate.facts has ${MAX_NODE_FACT_VALUES + 1} values; at most ${MAX_NODE_FACT_VALUES} are indexed`);
    assert.deepEqual(JSON.parse((await redis.client().hget(keys.node(0, 'web2'), 'facts')) ?? ''), { role: 'web' });
  });
});
