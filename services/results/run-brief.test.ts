import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NodeResult, NodeState } from '../../gen/baton/v1/run';
import { unary } from '../../lib/grpc-client';
import { useRedisServer } from '../../test/helpers/redis';
import { CorruptRecordError } from './corrupt-record-error';
import { createRun, finished, newRun, nodeResult, record, startResultsTestService, type ResultsTestService } from '../../test/helpers/results-service';
import { briefHolds, briefItems, encodeBrief } from './run-brief';
import { projectResult, resultFieldsOf } from './run-result-fields';

const redisServer = useRedisServer();
let t: ResultsTestService;

/** Every field a brief holds, and the combinations bolt_task reads ask for. */
const FIELD_SETS = [
  ['host', 'task_id', 'task', 'callerid', 'state', 'exitcode', 'completed', 'runtime', 'start_time', 'statuscode'],
  ['completed', 'exitcode'],
  ['completed', 'runtime', 'start_time'],
  ['callerid', 'completed', 'task'],
  [],
];

const slimRead = (taskId: string, fields: string[]) =>
  unary(t.client, t.client.getRunStatus, { taskId, resultFields: { fields, where: '', hostsOnly: false } });
const briefKey = (taskId: string) => `${t.prefix}:run:{${taskId}}:brief`;

/** A run with a node in each situation a slim read must answer alike from briefs and from full results. */
async function mixedRun(): Promise<string> {
  const run = await createRun(t, newRun(['cancelled', 'failed', 'noresponse', 'pending', 'running', 'succeeded', 'wrapper', 'forged']));
  const started = new Date('2024-01-02T03:04:05.678Z');
  await record(t, run.taskId, [
    nodeResult('running', { runtime: 2.25, startTime: started, stdout: 'half way' }),
    finished('succeeded', 0, 1.5, { stdout: 'x'.repeat(100_000) }),
    finished('failed', 3, 0.125, { stderr: 'boom' }),
    nodeResult('noresponse', { state: NodeState.NODE_STATE_NO_RESPONSE }),
    nodeResult('cancelled', { state: NodeState.NODE_STATE_CANCELLED, runtime: 4, startTime: started, exitcode: -1 }),
    nodeResult('wrapper', { state: NodeState.NODE_STATE_FAILED, statuscode: 5, statusmsg: 'could not spawn the task wrapper' }),
    // A service may record its own task and caller (normalizeNodeResults keeps them): commas and quotes included.
    finished('forged', 1, 1, { task: 'other::task', callerid: 'cert=a,b "c"' }),
  ]);
  return run.taskId;
}

describe('node briefs (the slim read without output)', () => {
  before(async () => {
    t = await startResultsTestService(redisServer.url);
  });
  after(async () => {
    await t.close();
  });

  it('answer a slim read exactly as the full results do, for pending, running, succeeded, failed, NO_RESPONSE and cancelled nodes', async () => {
    const taskId = await mixedRun();
    assert.equal(await t.redis.hlen(briefKey(taskId)), 8, 'one brief per node, pending ones included');
    const fromBriefs = await Promise.all(FIELD_SETS.map((fields) => slimRead(taskId, fields)));
    // Without the brief hash (as a run created before briefs) the same reads cut the full results.
    await t.redis.del(briefKey(taskId));
    const fromResults = await Promise.all(FIELD_SETS.map((fields) => slimRead(taskId, fields)));
    const whole = await unary(t.client, t.client.getRunStatus, { taskId });
    FIELD_SETS.forEach((fields, i) => {
      assert.deepEqual(fromBriefs[i], fromResults[i], `fields ${fields.join(',')}`);
      const cut = whole.items.map((r) => projectResult(NodeResult.toJSON(r), resultFieldsOf(fields)));
      assert.deepEqual(fromBriefs[i].items, cut, `fields ${fields.join(',')} against the whole read`);
    });
    const all = fromBriefs[0].items;
    assert.deepEqual(
      all.map((r) => [r.host, r.state, r.exitcode]),
      [
        ['cancelled', NodeState.NODE_STATE_CANCELLED, -1],
        ['failed', NodeState.NODE_STATE_FAILED, 3],
        ['forged', NodeState.NODE_STATE_FAILED, 1],
        ['noresponse', NodeState.NODE_STATE_NO_RESPONSE, -1],
        ['pending', NodeState.NODE_STATE_PENDING, -1],
        ['running', NodeState.NODE_STATE_RUNNING, -1],
        ['succeeded', NodeState.NODE_STATE_SUCCEEDED, 0],
        ['wrapper', NodeState.NODE_STATE_FAILED, -1],
      ],
    );
    assert.deepEqual([all[2].task, all[2].callerid], ['other::task', 'cert=a,b "c"']);
    assert.equal(all[0].runtime, 4);
    assert.equal(all[7].statuscode, 5);
  });

  it('never let a late non-final report overwrite a final brief, but follow a late answer after NO_RESPONSE', async () => {
    const run = await createRun(t, newRun(['a', 'b']));
    await record(t, run.taskId, [finished('a', 2, 1), nodeResult('b', { state: NodeState.NODE_STATE_NO_RESPONSE })]);
    const before = await t.redis.hgetall(briefKey(run.taskId));
    assert.equal(await record(t, run.taskId, [nodeResult('a', { runtime: 9 }), nodeResult('b', { runtime: 9 })]), 0);
    assert.deepEqual(await t.redis.hgetall(briefKey(run.taskId)), before);
    let items = (await slimRead(run.taskId, ['exitcode', 'runtime'])).items;
    assert.deepEqual(
      items.map((r) => [r.state, r.exitcode, r.runtime]),
      [
        [NodeState.NODE_STATE_FAILED, 2, 1],
        [NodeState.NODE_STATE_NO_RESPONSE, -1, 0],
      ],
    );
    await record(t, run.taskId, [finished('b', 0, 7)]);
    items = (await slimRead(run.taskId, ['exitcode', 'runtime'])).items;
    assert.deepEqual(
      items[1],
      NodeResult.fromPartial({
        host: 'b',
        state: NodeState.NODE_STATE_SUCCEEDED,
        completed: true,
        runtime: 7,
        startTime: new Date('2024-01-02T03:04:05.000Z'),
      }),
    );
  });

  it('are not started for a run that has none (created before briefs), whose slim reads keep reading the full results', async () => {
    const run = await createRun(t, newRun(['a', 'b']));
    await t.redis.del(briefKey(run.taskId));
    await record(t, run.taskId, [finished('a', 4, 2)]);
    assert.equal(await t.redis.exists(briefKey(run.taskId)), 0, 'a partial brief hash would hide the other nodes');
    const items = (await slimRead(run.taskId, ['exitcode'])).items;
    assert.deepEqual(
      items.map((r) => [r.host, r.state, r.exitcode]),
      [
        ['a', NodeState.NODE_STATE_FAILED, 4],
        ['b', NodeState.NODE_STATE_PENDING, -1],
      ],
    );
  });

  it('hold every field but the output', () => {
    assert.equal(briefHolds(resultFieldsOf(FIELD_SETS[0])), true);
    for (const output of ['stdout', 'stderr', 'value', 'statusmsg']) assert.equal(briefHolds(resultFieldsOf(['exitcode', output])), false, output);
  });

  it('read back as written, and refuse a brief that is not one', () => {
    const run = newRun(['h']);
    const result = NodeResult.fromPartial({
      host: 'h',
      taskId: run.taskId,
      task: run.task,
      callerid: run.caller,
      state: NodeState.NODE_STATE_FAILED,
      exitcode: -7,
      completed: true,
      runtime: 1e-7,
      startTime: new Date(1),
      statuscode: 1,
    });
    const names = resultFieldsOf(FIELD_SETS[0]);
    assert.deepEqual(briefItems(run, [encodeBrief(result, run, 0)], names), [result]);
    for (const bad of ['', '0,5,0,1,0', '0,x,0,1,0,,0', '0,5,0,1,0,,0,[1]', '0,5,0,1,0,,0,not json', '0,5,,1,0,,0', '1,5,0,1,0,,0']) {
      assert.throws(() => briefItems(run, [bad], names), CorruptRecordError, JSON.stringify(bad));
    }
    assert.throws(() => briefItems(run, ['0,5,0,1,0,,0', '0,5,0,1,0,,0'], names), CorruptRecordError, 'two briefs of one node');
  });
});
