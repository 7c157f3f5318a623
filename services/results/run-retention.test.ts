import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { scanKeys, type RedisClient as Redis } from '../../lib/redis-client';
import { RunState, type Run } from '../../gen/baton/v1/run';
import { unary } from '../../lib/grpc-client';
import { useRedisServer } from '../../test/helpers/redis';
import { waitFor } from '../../test/helpers/wait';
import {
  collectEvents,
  createRun,
  finished,
  grpcError,
  newRun,
  record,
  startResultsTestService,
  type ResultsTestService,
} from '../../test/helpers/results-service';
import { RETENTION_SWEEP_BATCH } from './run-retention';

const redisServer = useRedisServer();
let redis: Redis;

const T0 = Date.UTC(2025, 0, 1);
const RETENTION_S = 60;

/** A results service whose clock reads `clock.ms`. */
async function startWithClock(clock: { ms: number }, runRetentionS = RETENTION_S): Promise<ResultsTestService> {
  return startResultsTestService(redisServer.url, undefined, { now: () => new Date(clock.ms), runRetentionS });
}

/** Every key under the service's prefix that belongs to run `taskId` (SCAN on its hash tag). */
async function keysOfRun(t: ResultsTestService, taskId: string): Promise<string[]> {
  return scanKeys(redis, `${t.prefix}:run:{${taskId}}*`);
}

/** The index zsets (runs, task, caller) that still list `run`. */
async function indexesListing(t: ResultsTestService, run: Run): Promise<string[]> {
  const keys = [`${t.prefix}:runs`, `${t.prefix}:runs:task:${run.task}`, `${t.prefix}:runs:caller:${run.caller}`];
  const scores = await Promise.all(keys.map((k) => redis.zscore(k, run.taskId)));
  return keys.filter((_, i) => scores[i] !== null);
}

const getStatus = (t: ResultsTestService, taskId: string) => unary(t.client, t.client.getRunStatus, { taskId });
const setState = (t: ResultsTestService, taskId: string, state: RunState) => unary(t.client, t.client.updateRunState, { taskId, state, reason: '' });

describe('run retention', () => {
  before(() => {
    redis = redisServer.client();
  });
  const services: ResultsTestService[] = [];
  after(async () => {
    await Promise.all(services.map((s) => s.close()));
  });

  it('removes every key of runs that ended (or, never ended, were created) longer ago than the retention, and keeps the others', async () => {
    const clock = { ms: T0 };
    const t = await startWithClock(clock);
    services.push(t);
    // At T0: one run ends at once, one gets stuck RUNNING, one runs long.
    const ended = await createRun(t, newRun(['a', 'b'], { caller: 'user=old' }));
    await setState(t, ended.taskId, RunState.RUN_STATE_RUNNING);
    await record(t, ended.taskId, [finished('a', 0, 1), finished('b', 1, 1)]);
    assert.equal((await getStatus(t, ended.taskId)).run?.state, RunState.RUN_STATE_FAILED);
    const stuck = await createRun(t, newRun(['a']));
    await setState(t, stuck.taskId, RunState.RUN_STATE_RUNNING);
    const long = await createRun(t, newRun(['a']));
    await setState(t, long.taskId, RunState.RUN_STATE_RUNNING);
    // At T0 + 100 s the long run ends; at T0 + 110 s a young run starts.
    clock.ms = T0 + 100_000;
    await record(t, long.taskId, [finished('a', 0, 100)]);
    clock.ms = T0 + 110_000;
    const young = await createRun(t, newRun(['a']));
    assert.equal((await keysOfRun(t, ended.taskId)).length, 7, 'record, results, briefs, events, final hosts, header and result events exist before the sweep');

    // A client following the stuck run's events is told when the run goes.
    const following = collectEvents(t, { taskId: stuck.taskId, follow: true });
    await waitFor('the follower to be registered', async () => String(await redis.client('LIST')).includes('name=baton-results-watch'));

    // At T0 + 130 s with a 60 s retention, the cutoff is T0 + 70 s.
    clock.ms = T0 + 130_000;
    assert.deepEqual(await t.service.retention.sweep(), { removed: 2, kept: 1 });
    const followerError = await grpcError(following);
    assert.equal(followerError.code, status.NOT_FOUND);
    assert.equal(followerError.details, `run ${stuck.taskId} was removed by retention while it was watched`);
    for (const gone of [ended, stuck]) {
      assert.deepEqual(await keysOfRun(t, gone.taskId), [], 'no key of a removed run is left');
      assert.deepEqual(await indexesListing(t, gone), [], 'no index lists a removed run');
      const err = await grpcError(getStatus(t, gone.taskId));
      assert.equal(err.code, status.NOT_FOUND);
      assert.equal((await grpcError(collectEvents(t, { taskId: gone.taskId }))).code, status.NOT_FOUND);
      // A late result of a removed run is NOT_FOUND and writes nothing back.
      assert.equal((await grpcError(record(t, gone.taskId, [finished('a', 0, 1)]))).code, status.NOT_FOUND);
      assert.deepEqual(await keysOfRun(t, gone.taskId), []);
    }
    assert.equal(await redis.exists(`${t.prefix}:runs:caller:user=old`), 0, 'an emptied index disappears');
    for (const kept of [long, young]) {
      assert.equal((await getStatus(t, kept.taskId)).run?.taskId, kept.taskId);
      // The young run has no result yet, so no set of final hosts and no result events.
      assert.equal((await keysOfRun(t, kept.taskId)).length, kept === long ? 7 : 5);
      assert.equal((await indexesListing(t, kept)).length, 3);
    }
    const listed = await unary(t.client, t.client.listRuns, { pageSize: 0, pageToken: '' });
    assert.deepEqual(listed.runs.map((r) => r.taskId).sort(), [long.taskId, young.taskId].sort());

    // Once its end is older than the retention too, the long run goes; the young RUNNING one stays until its creation is.
    clock.ms = T0 + 165_000;
    assert.deepEqual(await t.service.retention.sweep(), { removed: 1, kept: 0 });
    assert.equal((await getStatus(t, young.taskId)).run?.state, RunState.RUN_STATE_PENDING);
    clock.ms = T0 + 171_000;
    assert.deepEqual(await t.service.retention.sweep(), { removed: 1, kept: 0 });
    assert.deepEqual(await keysOfRun(t, young.taskId), []);
  });

  it('sweeps many expired runs in batches, passing over the ones it keeps', async () => {
    const clock = { ms: T0 };
    const t = await startWithClock(clock);
    services.push(t);
    const expired = 2 * RETENTION_SWEEP_BATCH + 17;
    const keptIds: string[] = [];
    for (let i = 0; i < expired; i += 25) {
      await Promise.all(Array.from({ length: Math.min(25, expired - i) }, () => createRun(t, newRun(['a'], { state: RunState.RUN_STATE_CANCELLED }))));
      // Runs created as old as the rest but ending later stay: they sit among the candidates.
      const late = await createRun(t, newRun(['a']));
      await setState(t, late.taskId, RunState.RUN_STATE_RUNNING);
      keptIds.push(late.taskId);
    }
    clock.ms = T0 + 1_000_000;
    for (const id of keptIds) await record(t, id, [finished('a', 0, 1)]);
    clock.ms = T0 + 1_030_000;
    assert.deepEqual(await t.service.retention.sweep(), { removed: expired, kept: keptIds.length });
    assert.equal(await redis.zcard(`${t.prefix}:runs`), keptIds.length);
    const left = await scanKeys(redis, `${t.prefix}:*`);
    // What is left: the kept runs' seven keys each (record, results, briefs, events, final hosts, header, result events), and the three indexes.
    assert.equal(left.length, 7 * keptIds.length + 3);
  });

  it('skips, then sweeps, index entries left without a run (the indexes are written by their own commands)', async () => {
    const clock = { ms: T0 };
    const t = await startWithClock(clock);
    services.push(t);
    const run = await createRun(t, newRun(['a'], { state: RunState.RUN_STATE_SUCCEEDED }));
    // As a crash leaves them: the indexes written for a run whose create script never ran.
    const ghost = newRun(['b'], { task: run.task, caller: run.caller });
    for (const k of [`${t.prefix}:runs`, `${t.prefix}:runs:task:${run.task}`, `${t.prefix}:runs:caller:${run.caller}`])
      await redis.zadd(k, T0 + 1, ghost.taskId);
    for (const query of [{}, { task: run.task }, { caller: run.caller }]) {
      const page = await unary(t.client, t.client.listRuns, { pageSize: 10, pageToken: '', ...query });
      assert.deepEqual(
        page.runs.map((r) => r.taskId),
        [run.taskId],
        JSON.stringify(query),
      );
    }
    clock.ms = T0 + (RETENTION_S + 1) * 1000;
    assert.deepEqual(await t.service.retention.sweep(), { removed: 2, kept: 0 });
    assert.deepEqual(await indexesListing(t, run), []);
    assert.equal(await redis.zscore(`${t.prefix}:runs`, ghost.taskId), null);
  });

  it('keeps every run when the retention is 0', async () => {
    const clock = { ms: T0 };
    const t = await startWithClock(clock, 0);
    services.push(t);
    const run = await createRun(t, newRun(['a'], { state: RunState.RUN_STATE_SUCCEEDED }));
    clock.ms = T0 + 10 * 365 * 86_400_000;
    assert.deepEqual(await t.service.retention.sweep(), { removed: 0, kept: 0 });
    assert.equal((await getStatus(t, run.taskId)).run?.taskId, run.taskId);
  });
});
