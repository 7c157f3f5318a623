import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { NodeState } from '../../gen/baton/v1/run';
import { unary } from '../../lib/grpc-client';
import { LIMITS } from '../../lib/limits';
import { useRedisServer } from '../../test/helpers/redis';
import { createRun, grpcError, newRun, record, startResultsTestService, type ResultsTestService } from '../../test/helpers/results-service';
import { recordResults, unstartedResult } from './node-results';

/** Results the scheduler records itself, against a real results service over a real Redis. */

const redis = useRedisServer();

describe('recordResults', () => {
  let results: ResultsTestService;
  before(async () => {
    results = await startResultsTestService(redis.url);
  });
  after(async () => {
    await results?.close();
  });

  it('records more results than one call may carry: every node of a large run ends NO_RESPONSE', async () => {
    const size = LIMITS.recordResults.max * 2 + 1;
    const nodes = Array.from({ length: size }, (_, i) => `node${i}.example.com`);
    const run = await createRun(results, newRun(nodes));
    const lost = nodes.map((n) => unstartedResult(run, n, NodeState.NODE_STATE_NO_RESPONSE, 'no response: the node was offline when the run started'));

    const refused = await grpcError(record(results, run.taskId, lost));
    assert.equal(refused.code, status.INVALID_ARGUMENT, 'one call with every result is over the limit');

    await recordResults(results.client, run.taskId, lost);
    const progress = await unary(results.client, results.client.getRunProgress, { taskId: run.taskId, hosts: [] });
    assert.equal(progress.nodes, size);
    assert.equal(progress.finalNodes, size);
  });
});
