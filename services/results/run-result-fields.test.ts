import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { NodeResult, NodeState } from '../../gen/baton/v1/run';
import { readServiceError } from '../../lib/errors';
import { unary } from '../../lib/grpc-client';
import { useRedisServer } from '../../test/helpers/redis';
import {
  createRun,
  finished,
  grpcError,
  newRun,
  nodeResult,
  record,
  startResultsTestService,
  type ResultsTestService,
} from '../../test/helpers/results-service';

const redisServer = useRedisServer();
let t: ResultsTestService;

describe('GetRunStatus with result_fields (the slim read)', () => {
  before(async () => {
    t = await startResultsTestService(redisServer.url);
  });
  after(async () => {
    await t.close();
  });

  it('returns every node with host, state, completed, start_time and the selected fields only, and no stats or summary', async () => {
    const run = await createRun(t, newRun(['web-1', 'web-2', 'web-3']));
    await record(t, run.taskId, [
      finished('web-1', 3, 1.5, { stdout: 'boom', stderr: 'bad', startTime: new Date(1_000_000) }),
      nodeResult('web-2', { state: NodeState.NODE_STATE_NO_RESPONSE }),
    ]);
    const whole = await unary(t.client, t.client.getRunStatus, { taskId: run.taskId });
    const slim = await unary(t.client, t.client.getRunStatus, {
      taskId: run.taskId,
      resultFields: { fields: ['exitcode', 'callerid'], where: '', hostsOnly: false },
    });
    assert.deepEqual(slim.run, whole.run);
    assert.equal(slim.stats, undefined);
    assert.equal(slim.summary, undefined);
    const pick = (r: NodeResult) =>
      NodeResult.fromPartial({ host: r.host, state: r.state, completed: r.completed, startTime: r.startTime, exitcode: r.exitcode, callerid: r.callerid });
    assert.deepEqual(slim.items, whole.items.map(pick), 'the whole read cut down to those fields, the pending web-3 included');
    assert.equal(slim.items[0].exitcode, 3);
    assert.equal(slim.items[0].stdout, '', 'stdout was not asked for');
    assert.equal(slim.items[2].state, NodeState.NODE_STATE_PENDING);
  });

  it('rejects an unknown field name with INVALID_ARGUMENT naming it and the known ones', async () => {
    const run = await createRun(t, newRun(['web-1']));
    const err = await grpcError(
      unary(t.client, t.client.getRunStatus, { taskId: run.taskId, resultFields: { fields: ['exitcode', 'exit_code'], where: '', hostsOnly: false } }),
    );
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(readServiceError(err).message, /^result_fields: unknown NodeResult field "exit_code"; expected one of host, task_id, .*start_time/);
  });

  it('with where, returns only the nodes the task is known on that satisfy it, read from briefs or from full results alike', async () => {
    const run = await createRun(t, newRun(['web-1', 'web-2', 'web-3', 'web-4', 'web-5']));
    await record(t, run.taskId, [
      finished('web-1', 3, 1.5, { stdout: 'boom' }),
      finished('web-2', 0, 0.5, { stdout: 'fine' }),
      nodeResult('web-3', { state: NodeState.NODE_STATE_NO_RESPONSE }),
      nodeResult('web-4', { state: NodeState.NODE_STATE_RUNNING, startTime: new Date(1_000_000) }),
    ]);
    const hosts = async (fields: string[], where: string) =>
      (
        await unary(t.client, t.client.getRunStatus, {
          taskId: run.taskId,
          resultFields: { fields, where: where.replaceAll('ID', run.taskId), hostsOnly: false },
        })
      ).items.map((r) => r.host);
    assert.deepEqual(await hosts([], `bolt_task('ID').exitcode > 0`), ['web-1'], 'web-3 (no response), web-4 (running) and web-5 (pending) do not match');
    assert.deepEqual(
      await hosts([], `bolt_task('ID').exitcode < 1`),
      ['web-2', 'web-4', 'web-5'],
      'running and pending nodes have exit code -1; web-3 never answered',
    );
    assert.deepEqual(await hosts([], `bolt_task('ID').known == true`), ['web-1', 'web-2', 'web-4', 'web-5']);
    assert.deepEqual(await hosts([], `bolt_task('ID').known == false`), [], 'nodes that never ran are never returned');
    assert.deepEqual(
      await hosts(['stdout'], `bolt_task('ID').stdout =~ /BOOM/ or (bolt_task('ID').runtime < 1 and bolt_task('ID').completed == true)`),
      ['web-1', 'web-2'],
      'stdout is not in the briefs: read from the full results',
    );
    const matched = await unary(t.client, t.client.getRunStatus, {
      taskId: run.taskId,
      resultFields: { fields: [], where: `bolt_task('${run.taskId}').exitcode > 0`, hostsOnly: false },
    });
    assert.equal(matched.items[0].exitcode, 3, 'the fields the expression compares come with each node');
    const named = await unary(t.client, t.client.getRunStatus, {
      taskId: run.taskId,
      resultFields: { fields: ['exitcode'], where: `bolt_task('${run.taskId}').exitcode < 1`, hostsOnly: true },
    });
    assert.deepEqual(
      named.items,
      ['web-2', 'web-4', 'web-5'].map((host) => NodeResult.fromPartial({ host })),
      'with hosts_only, each node returned carries its name alone',
    );
    const everyNode = await unary(t.client, t.client.getRunStatus, { taskId: run.taskId, resultFields: { fields: ['exitcode'], where: '', hostsOnly: true } });
    assert.equal(everyNode.items.find((r) => r.host === 'web-1')?.exitcode, 3, 'hosts_only is ignored without where');
    assert.deepEqual(
      matched.run,
      { ...(await unary(t.client, t.client.getRunStatus, { taskId: run.taskId })).run, nodes: [] },
      'the run record without its node list',
    );
  });

  it('rejects a malformed where, a term of another kind or of another run with INVALID_ARGUMENT naming it', async () => {
    const run = await createRun(t, newRun(['web-1']));
    const where = async (text: string) => {
      const err = await grpcError(unary(t.client, t.client.getRunStatus, { taskId: run.taskId, resultFields: { fields: [], where: text, hostsOnly: false } }));
      assert.equal(err.code, status.INVALID_ARGUMENT);
      return readServiceError(err).message;
    };
    assert.match(await where(`bolt_task('${run.taskId}').exitcode >`), /^result_fields\.where: .*column \d+/);
    assert.match(
      await where(`role::web and bolt_task('${run.taskId}').exitcode > 0`),
      /^result_fields\.where: only bolt_task\('[0-9a-f]{32}'\) terms .*, got role::web$/,
    );
    assert.match(await where(`bolt_task('${'b'.repeat(32)}').exitcode > 0`), /got bolt_task\('b{32}'\)\.exitcode > 0$/);
  });
});
