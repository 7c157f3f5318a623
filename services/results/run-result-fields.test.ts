import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { NodeResult, NodeState } from '../../gen/baton/v1/run';
import { readServiceError } from '../../lib/errors';
import { unary } from '../../lib/grpc-client';
import { useRedisServer } from '../../test/helpers/redis';
import { createRun, finished, grpcError, newRun, nodeResult, record, startResultsTestService, type ResultsTestService } from './results-test-service';

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
    const slim = await unary(t.client, t.client.getRunStatus, { taskId: run.taskId, resultFields: { fields: ['exitcode', 'callerid'] } });
    assert.deepEqual(slim.run, whole.run);
    assert.equal(slim.stats, undefined);
    assert.equal(slim.summary, undefined);
    const pick = (r: NodeResult) => NodeResult.fromPartial({ host: r.host, state: r.state, completed: r.completed, startTime: r.startTime, exitcode: r.exitcode, callerid: r.callerid });
    assert.deepEqual(slim.items, whole.items.map(pick), 'the whole read cut down to those fields, the pending web-3 included');
    assert.equal(slim.items[0].exitcode, 3);
    assert.equal(slim.items[0].stdout, '', 'stdout was not asked for');
    assert.equal(slim.items[2].state, NodeState.NODE_STATE_PENDING);
  });

  it('rejects an unknown field name with INVALID_ARGUMENT naming it and the known ones', async () => {
    const run = await createRun(t, newRun(['web-1']));
    const err = await grpcError(unary(t.client, t.client.getRunStatus, { taskId: run.taskId, resultFields: { fields: ['exitcode', 'exit_code'] } }));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(readServiceError(err).message, /^result_fields: unknown NodeResult field "exit_code"; expected one of host, task_id, .*start_time/);
  });
});
