import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import type { RedisClient as Redis } from '../../lib/redis-client';
import { NodeState, RunState, type NodeResult, type RunEvent } from '../../gen/baton/v1/run';
import { readServiceError } from '../../lib/errors';
import { unary } from '../../lib/grpc-client';
import { RedisKeys } from '../../lib/redis';
import { callsBetween, redisBooks as booksOf, useRedisServer } from '../../test/helpers/redis';
import { waitFor } from '../../test/helpers/wait';
import {
  collectEvents,
  createRun,
  finished,
  grpcError,
  newRun,
  nodeResult,
  record,
  startResultsTestService,
  type ResultsTestService,
} from '../../test/helpers/results-service';
import { RECORD_BATCH_MAX_BYTES, RunStore } from './run-store';

/**
 * Recording results at a cost per result that does not grow with the run, checked from Redis's
 * own books (bytes and commands, which are deterministic), and events that hold no output but
 * are read with it.
 */

const redisServer = useRedisServer();
let t: ResultsTestService;
let redis: Redis;
let keys: RedisKeys;

const redisBooks = () => booksOf(redis);
const setState = (taskId: string, state: RunState) => unary(t.client, t.client.updateRunState, { taskId, state, reason: '' });
const hostsOf = (count: number) => Array.from({ length: count }, (_, i) => `node-${String(i).padStart(5, '0')}`);

/** The service's Redis traffic for `calls` one-result RecordNodeResults calls into a RUNNING run of `nodes` nodes. */
async function trafficPerCall(nodes: number, calls: number): Promise<{ output: number; input: number; commands: Record<string, number> }> {
  const run = await createRun(t, newRun(hostsOf(nodes)));
  await setState(run.taskId, RunState.RUN_STATE_RUNNING);
  const start = new Date('2024-05-06T07:08:09.000Z');
  // The first call fills the service's header cache; it is not what is measured.
  await record(t, run.taskId, [nodeResult('node-00000', { startTime: start, runtime: 0.5 })]);
  const first = await redisBooks();
  const second = await redisBooks(); // what one reading itself costs
  for (let i = 0; i < calls; i++) {
    await record(t, run.taskId, [nodeResult(`node-0000${i % 10}`, { startTime: start, runtime: i + 1 })]);
  }
  const third = await redisBooks();
  const reading = { output: second.output - first.output, input: second.input - first.input };
  return {
    output: (third.output - second.output - reading.output) / calls,
    input: (third.input - second.input - reading.input) / calls,
    commands: callsBetween(second.calls, third.calls),
  };
}

/** The stored event log of a run, raw: every field of every entry. */
async function storedEvents(taskId: string): Promise<string> {
  const entries = await redis.xrange(keys.runEvents(taskId), '-', '+');
  return entries.map(([, fields]) => fields.join('\n')).join('\n');
}

/** The node_result events of a log as host, state and output. */
function resultEvents(events: RunEvent[]): Array<[string, NodeState, string, string]> {
  return events.flatMap((e) =>
    e.event?.$case === 'nodeResult'
      ? [[e.event.value.host, e.event.value.state, e.event.value.stdout, e.event.value.stderr] as [string, NodeState, string, string]]
      : [],
  );
}

/** The RunStateChanged states of a log. */
function runStates(events: RunEvent[]): RunState[] {
  return events.flatMap((e) => (e.event?.$case === 'runStateChanged' ? [e.event.value.state] : []));
}

describe('RecordNodeResults at scale', () => {
  before(async () => {
    t = await startResultsTestService(redisServer.url);
    redis = redisServer.client();
    keys = new RedisKeys(t.prefix);
  });
  after(async () => {
    await t.close();
  });

  it('reads and writes the same Redis bytes and commands per result in a run of 20,000 nodes as in one of 10', async () => {
    const small = await trafficPerCall(10, 50);
    const big = await trafficPerCall(20_000, 50);
    // commandstats counts the commands a script runs too: the same ones, as often, at both sizes.
    assert.deepEqual(big.commands, small.commands, 'the same commands per call');
    assert.equal(small.commands.evalsha, 50, 'one script call per request');
    for (const whole of ['get', 'hgetall', 'hvals', 'smembers', 'xrange']) assert.equal(small.commands[whole], undefined, `no ${whole}`);
    // INFO's own replies may differ by a digit between readings: well under a byte per call.
    assert.ok(Math.abs(big.output - small.output) < 1, `Redis sent ${big.output} bytes per result at 20,000 nodes, ${small.output} at 10`);
    // Sent: the same, but for the digits of the node count and of the event log cap.
    assert.ok(Math.abs(big.input - small.input) <= 10, `Redis received ${big.input} bytes per result at 20,000 nodes, ${small.input} at 10`);
  });

  it('records a batch of 500 results with one script call', async () => {
    const hosts = hostsOf(600);
    const run = await createRun(t, newRun(hosts));
    await setState(run.taskId, RunState.RUN_STATE_RUNNING);
    await record(t, run.taskId, [nodeResult(hosts[599])]); // fills the header cache
    const before = await redisBooks();
    assert.equal(
      await record(
        t,
        run.taskId,
        hosts.slice(0, 500).map((h, i) => finished(h, i % 7 === 0 ? 1 : 0, 1, { stdout: `out of ${h}` })),
      ),
      500,
    );
    const after = await redisBooks();
    const calls = callsBetween(before.calls, after.calls);
    assert.equal(calls.evalsha, 1, 'one script call');
    // Within it, a fixed number of commands per result: the stored result read once (membership
    // and whether it changes) and the brief's position read, one event, one final-set entry.
    assert.deepEqual([calls.hexists, calls.hget, calls.xadd, calls.sadd, calls.get, calls.hgetall], [undefined, 1000, 500, 500, undefined, undefined]);
    const status = await unary(t.client, t.client.getRunStatus, { taskId: run.taskId });
    assert.equal(status.stats?.completed, 500);
    assert.equal(status.items.find((r) => r.host === hosts[3])?.stdout, `out of ${hosts[3]}`);
  });

  it('refuses a batch naming a host outside the run with a one-line INVALID_ARGUMENT and writes nothing, also when it takes several script calls', async () => {
    const hosts = hostsOf(4);
    const run = await createRun(t, newRun(hosts));
    await setState(run.taskId, RunState.RUN_STATE_RUNNING);
    const snapshot = async () =>
      Promise.all([
        redis.hgetall(keys.runResults(run.taskId)),
        redis.hgetall(keys.runBriefs(run.taskId)),
        redis.xlen(keys.runEvents(run.taskId)),
        redis.exists(keys.runResultEvents(run.taskId), keys.runFinalHosts(run.taskId)),
      ]);
    const stored = await snapshot();
    // Three results of ~45% of the per-call byte bound each: two script calls would write them.
    const big = 'x'.repeat(Math.floor(RECORD_BATCH_MAX_BYTES * 0.45));
    const requests: NodeResult[][] = [
      [finished(hosts[0], 0, 1), finished('intruder', 0, 1)],
      [
        finished(hosts[0], 0, 1, { stdout: big }),
        finished(hosts[1], 0, 1, { stdout: big }),
        finished(hosts[2], 0, 1, { stdout: big }),
        finished('intruder', 0, 1),
      ],
    ];
    for (const results of requests) {
      const err = await grpcError(record(t, run.taskId, results));
      assert.equal(err.code, status.INVALID_ARGUMENT);
      const at = results.length - 1;
      assert.equal(err.details, `results[${at}].host: host "intruder" is not one of the nodes of run ${run.taskId}`);
      assert.deepEqual(
        readServiceError(err).violations.map((v) => v.field),
        [`results[${at}].host`],
      );
      assert.deepEqual(await snapshot(), stored, 'nothing written');
    }
    // The same big batch without the intruder is written, in more than one script call.
    const before = await redisBooks();
    assert.equal(await record(t, run.taskId, requests[1].slice(0, 3)), 3);
    const calls = callsBetween(before.calls, (await redisBooks()).calls);
    assert.ok((calls.evalsha ?? 0) + (calls.eval ?? 0) >= 3, `a membership check and two record calls: ${JSON.stringify(calls)}`);
    const status2 = await unary(t.client, t.client.getRunStatus, { taskId: run.taskId });
    assert.deepEqual(
      status2.items.map((r) => r.stdout.length),
      [big.length, big.length, big.length, 0],
    );
  });

  it('keeps output out of the event log, and WatchRunEvents sends it with the event that recorded it, resumed or followed', async () => {
    const run = await createRun(t, newRun(['a', 'b', 'c']));
    await setState(run.taskId, RunState.RUN_STATE_RUNNING);
    const seen: RunEvent[] = [];
    const following = collectEvents(t, { taskId: run.taskId, follow: true }, (e) => seen.push(e));
    await waitFor('the catch-up events', () => seen.length === 2);
    await record(t, run.taskId, [nodeResult('a'), nodeResult('b', { state: NodeState.NODE_STATE_NO_RESPONSE })]);
    await waitFor('the live events', () => seen.length === 4);
    const mark = seen.at(-1)!.id;
    await record(t, run.taskId, [finished('a', 0, 1, { stdout: 'stdout-of-a', stderr: 'stderr-of-a' }), finished('b', 1, 2, { stdout: 'late-stdout-of-b' })]);
    await record(t, run.taskId, [finished('c', 0, 1, { stdout: 'stdout-of-c' })]);
    const followed = await following;
    assert.deepEqual(runStates(followed), [RunState.RUN_STATE_PENDING, RunState.RUN_STATE_RUNNING, RunState.RUN_STATE_FAILED]);

    const stored = await storedEvents(run.taskId);
    for (const output of ['stdout-of-a', 'stderr-of-a', 'late-stdout-of-b', 'stdout-of-c', '"done":true'])
      assert.ok(!stored.includes(output), `the event log holds no ${output}`);

    // The node's current result carries its output; a RUNNING or NO_RESPONSE replaced later
    // keeps its own fields, without output.
    const expected: Array<[string, NodeState, string, string]> = [
      ['a', NodeState.NODE_STATE_RUNNING, '', ''],
      ['b', NodeState.NODE_STATE_NO_RESPONSE, '', ''],
      ['a', NodeState.NODE_STATE_SUCCEEDED, 'stdout-of-a', 'stderr-of-a'],
      ['b', NodeState.NODE_STATE_FAILED, 'late-stdout-of-b', ''],
      ['c', NodeState.NODE_STATE_SUCCEEDED, 'stdout-of-c', ''],
    ];
    assert.deepEqual(resultEvents(followed), expected, 'followed live');
    const read = await collectEvents(t, { taskId: run.taskId });
    assert.deepEqual(resultEvents(read), expected, 'read afterwards');
    assert.deepEqual(read, followed);
    const resumed = await collectEvents(t, { taskId: run.taskId, resumeToken: mark });
    assert.deepEqual(resultEvents(resumed), expected.slice(2), 'resumed after a token');
    const c = resumed.find((e) => e.event?.$case === 'nodeResult' && e.event.value.host === 'c');
    assert.deepEqual(c?.event?.$case === 'nodeResult' ? c.event.value.value : undefined, { done: true }, 'the value comes back with the output');
  });

  it('finalises a run exactly once when its last results arrive in concurrent batches', async () => {
    for (const failing of [false, true]) {
      const hosts = hostsOf(200);
      const run = await createRun(t, newRun(hosts));
      await setState(run.taskId, RunState.RUN_STATE_RUNNING);
      const batches = Array.from({ length: 8 }, (_, b) => hosts.slice(b * 25, b * 25 + 25).map((h) => finished(h, failing && h === hosts[137] ? 1 : 0, 1)));
      const recorded = await Promise.all([...batches, ...batches].map((batch) => record(t, run.taskId, batch)));
      assert.equal(
        recorded.reduce((a, b) => a + b, 0),
        200,
        'each result counted once, whichever copy of a batch came first',
      );
      const events = await collectEvents(t, { taskId: run.taskId });
      const final = failing ? RunState.RUN_STATE_FAILED : RunState.RUN_STATE_SUCCEEDED;
      assert.deepEqual(runStates(events), [RunState.RUN_STATE_PENDING, RunState.RUN_STATE_RUNNING, final]);
      assert.equal((await unary(t.client, t.client.getRunStatus, { taskId: run.taskId })).run?.state, final);
      assert.equal(await redis.hget(keys.runHeader(run.taskId), 'state'), String(final), 'the header follows the record');
    }
  });

  it('records into a run created before headers existed, writing its header once from the record', async () => {
    const run = await createRun(t, newRun(['a', 'b'], { caller: 'user=old' }));
    await setState(run.taskId, RunState.RUN_STATE_RUNNING);
    await redis.del(keys.runHeader(run.taskId), keys.runResultEvents(run.taskId));
    assert.equal(await record(t, run.taskId, [finished('a', 0, 1)]), 1);
    assert.deepEqual(await redis.hgetall(keys.runHeader(run.taskId)), {
      task: 'acme::deploy',
      caller: 'user=old',
      nodes: '2',
      state: String(RunState.RUN_STATE_RUNNING),
    });
    assert.equal(await record(t, run.taskId, [finished('b', 0, 1)]), 1);
    const status = await unary(t.client, t.client.getRunStatus, { taskId: run.taskId });
    assert.equal(status.run?.state, RunState.RUN_STATE_SUCCEEDED);
    assert.deepEqual(
      status.items.map((r) => r.callerid),
      ['user=old', 'user=old'],
    );
    const err = await grpcError(record(t, run.taskId, [finished('c', 0, 1)]));
    assert.equal(err.details, `results[0].host: host "c" is not one of the nodes of run ${run.taskId}`);
  });

  it('notices a run removed and created again under the same task id, by another replica, after its header was cached', async () => {
    const first = await createRun(t, newRun(['a'], { caller: 'user=first' }));
    assert.equal(await record(t, first.taskId, [nodeResult('a')]), 1);
    const stale = await redis.get(keys.run(first.taskId));
    assert.equal(await new RunStore(redis, keys).deleteRun({ taskId: first.taskId, raw: stale!, run: first }), true);
    // Created again through another replica: this one still holds the first run's header.
    const other = await startResultsTestService(redisServer.url, t.prefix);
    try {
      await createRun(other, newRun(['a', 'b'], { taskId: first.taskId, caller: 'user=second' }));
    } finally {
      await other.close();
    }
    assert.equal(await record(t, first.taskId, [finished('b', 0, 1)]), 1);
    const status = await unary(t.client, t.client.getRunStatus, { taskId: first.taskId });
    assert.deepEqual(
      status.items.map((r) => [r.host, r.callerid, r.state]),
      [
        ['a', 'user=second', NodeState.NODE_STATE_PENDING],
        ['b', 'user=second', NodeState.NODE_STATE_SUCCEEDED],
      ],
    );
  });
});
