import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RedisKeys } from '../../lib/redis';
import { newTaskId } from '../../lib/task-id';
import { uniquePrefix, useRedisServer } from '../../test/helpers/redis';
import { RunRequests } from './run-requests';

describe('RunRequests (RunTask idempotency in Redis)', () => {
  const redis = useRedisServer();
  const requests = () => new RunRequests(redis.client(), new RedisKeys(uniquePrefix()));

  it('answers a repeated request id of the same caller with the first task id, and keeps callers apart', async () => {
    const r = requests();
    const first = newTaskId();
    assert.equal(await r.claim('user=a', 'req-1', first), undefined);
    assert.equal(await r.claim('user=a', 'req-1', newTaskId()), first);
    assert.equal(await r.claim('user=b', 'req-1', newTaskId()), undefined);
  });

  it('gives an id back only while it still names the run that could not be created', async () => {
    const r = requests();
    const failed = newTaskId();
    await r.claim('user=a', 'req-2', failed);
    await r.release('user=a', 'req-2', newTaskId());
    assert.equal(await r.claim('user=a', 'req-2', newTaskId()), failed, 'another run id releases nothing');
    await r.release('user=a', 'req-2', failed);
    const retry = newTaskId();
    assert.equal(await r.claim('user=a', 'req-2', retry), undefined, 'released: a retry starts a run');
    assert.equal(await r.claim('user=a', 'req-2', newTaskId()), retry);
  });
});
