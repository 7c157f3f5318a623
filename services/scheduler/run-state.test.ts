import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RunCommand } from '../../gen/baton/v1/agent_gateway_service';
import { RedisKeys } from '../../lib/redis';
import { newTaskId } from '../../lib/task-id';
import { uniquePrefix, useRedisServer } from '../../test/helpers/redis';
import { waitFor } from '../../test/helpers/wait';
import { RunStateStore } from './run-state';

const redis = useRedisServer();

/** Two replicas' stores on one Redis and key prefix, and a new run's state begun by the first. */
async function begun(leaseMs = 200) {
  const keys = new RedisKeys(uniquePrefix());
  const a = new RunStateStore(redis.client(), keys, 'replica-a', leaseMs);
  const b = new RunStateStore(redis.client(), keys, 'replica-b', leaseMs);
  const taskId = newTaskId();
  const command = RunCommand.fromPartial({ taskId, task: 'acme::restart', inputJson: '{"password":"s3cret"}', caller: 'user=alice' });
  const state = await a.begin({
    taskId,
    plan: ['n1', 'n2', 'n3', 'n4', 'n5'],
    batchSize: 2,
    batches: 3,
    sleepMs: 1000,
    gateDeadlineMs: Date.now() + 60_000,
    command,
  });
  return { keys, a, b, taskId, state, command };
}

describe('RunStateStore', () => {
  it('keeps the run with its coordinator while the lease is renewed, and lets another replica take it over once it lapses', async () => {
    const { a, b, taskId, command } = await begun();
    assert.deepEqual(await a.active(), [taskId]);
    assert.equal(await b.takeOver(taskId), 'held');
    assert.deepEqual(await a.renew(taskId, 1), { cancelled: false });
    assert.equal(await b.takeOver(taskId), 'held');
    const taken = await waitFor(
      'the lease to lapse',
      async () => {
        const t = await b.takeOver(taskId);
        return t === 'held' ? undefined : t;
      },
      5_000,
      20,
    );
    assert.ok(taken !== 'gone');
    assert.equal(taken.state.epoch, 2);
    assert.equal(taken.state.coordinator, 'replica-b');
    assert.equal(taken.state.phase, 'GATE');
    assert.deepEqual(taken.plan, ['n1', 'n2', 'n3', 'n4', 'n5']);
    assert.deepEqual(taken.command, command);
    // The old coordinator is fenced: it can neither renew, nor move the run on, nor remove it.
    assert.equal(await a.renew(taskId, 1), undefined);
    assert.equal(await a.transition(taskId, 1, 'send', { phase: 'RUNNING', batch: 0 }), 'fenced');
    assert.equal(await a.finish(taskId, 1), false);
    assert.equal((await b.load(taskId))?.phase, 'GATE');
    assert.equal(await b.transition(taskId, 2, 'send', { phase: 'RUNNING', batch: 0 }), 'ok');
    assert.equal(await b.finish(taskId, 2), true);
    assert.equal(await b.load(taskId), undefined);
    assert.deepEqual(await b.active(), []);
  });

  it('refuses every send after a cancel, and tells the canceller which batches went out', async () => {
    const { a, b, taskId } = await begun(10_000);
    assert.equal(await a.transition(taskId, 1, 'send', { phase: 'RUNNING', batch: 0, sending: '1' }), 'ok');
    assert.equal(await a.transition(taskId, 1, 'keep', { sending: '0' }), 'ok');
    assert.equal(await a.transition(taskId, 1, 'keep', { phase: 'SLEEPING', sleep_until: Date.now() + 1000 }), 'ok');
    const point = await b.cancel(taskId);
    assert.deepEqual(point, { phase: 'SLEEPING', batch: 0, sending: false, batchSize: 2, plan: ['n1', 'n2', 'n3', 'n4', 'n5'] });
    assert.equal(await a.transition(taskId, 1, 'send', { phase: 'RUNNING', batch: 1 }), 'cancelled');
    assert.equal((await a.load(taskId))?.batch, 0, 'the refused transition changed nothing');
    assert.deepEqual(await a.renew(taskId, 1), { cancelled: true });
    // Changes that send nothing still go through (the coordinator brings the run to its end).
    assert.equal(await a.transition(taskId, 1, 'keep', { sending: '0' }), 'ok');
    assert.equal(await a.finish(taskId, 1), true);
    assert.equal(await b.cancel(taskId), undefined, 'a run without state: nothing to flag');
  });

  it('drops an active entry whose state is gone, and hands a released lease over at once', async () => {
    const { keys, a, b, taskId } = await begun(60_000);
    await a.release(taskId, 1);
    const taken = await b.takeOver(taskId);
    assert.ok(taken !== 'held' && taken !== 'gone');
    assert.equal(taken.state.epoch, 2);
    const orphan = newTaskId();
    await redis.client().zadd(keys.activeRuns(), Date.now(), orphan);
    assert.equal(await b.takeOver(orphan), 'gone');
    assert.deepEqual(await b.active(), [taskId]);
  });

  it('renews and releases the lease on the connection given for renewals, not behind a command that holds the main one', async () => {
    const keys = new RedisKeys(uniquePrefix());
    const main = redis.client();
    const a = new RunStateStore(main, keys, 'replica-a', 60_000, redis.client());
    const b = new RunStateStore(redis.client(), keys, 'replica-b', 60_000);
    const taskId = newTaskId();
    const command = RunCommand.fromPartial({ taskId, task: 'acme::restart', caller: 'user=alice' });
    await a.begin({ taskId, plan: ['n1'], batchSize: 1, batches: 1, sleepMs: 0, gateDeadlineMs: Date.now() + 60_000, command });
    // The main connection waits 3 s on an empty list, as it waits behind a busy replica's writes.
    const held = main.blpop(keys.runOrchestration(`${taskId}-nothing`), 3);
    const t0 = performance.now();
    assert.deepEqual(await a.renew(taskId, 1), { cancelled: false });
    await a.release(taskId, 1);
    const takenMs = performance.now() - t0;
    const taken = await b.takeOver(taskId);
    assert.ok(taken !== 'held' && taken !== 'gone', 'the released lease is free for another replica');
    assert.ok(takenMs < 2_000, `renewed and released in ${Math.round(takenMs)} ms while the main connection was held for 3 s`);
    assert.equal(await held, null);
  });
});
