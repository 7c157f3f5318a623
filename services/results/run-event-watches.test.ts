import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { status, type ServiceError } from '@grpc/grpc-js';
import { NodeState, RunState, type RunEvent } from '../../gen/baton/v1/run';
import { readServiceError } from '../../lib/errors';
import { unary } from '../../lib/grpc-client';
import { useRedisServer } from '../../test/helpers/redis';
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

const redisServer = useRedisServer();

/** A short description of an event, for comparing logs. */
function describeEvent(e: RunEvent): string {
  if (e.event?.$case === 'runStateChanged') return `run ${RunState[e.event.value.state]}`;
  if (e.event?.$case === 'nodeResult') return `${e.event.value.host} ${NodeState[e.event.value.state]}`;
  return 'empty';
}

/** How many blocked follower connections the service holds on Redis. */
async function followerConnections(t: ResultsTestService): Promise<number> {
  const list = await t.redis.client('LIST');
  return String(list)
    .split('\n')
    .filter((line) => line.includes('name=baton-results-watch')).length;
}

describe('ResultsService WatchRunEvents', () => {
  let t: ResultsTestService;
  before(async () => {
    t = await startResultsTestService(redisServer.url);
  });
  after(async () => {
    await t.close();
  });

  const setState = (taskId: string, state: RunState) => unary(t.client, t.client.updateRunState, { taskId, state, reason: '' });

  it('sends the whole log from the start, each event with its id, and ends', async () => {
    const run = await createRun(t, newRun(['a', 'b']));
    await setState(run.taskId, RunState.RUN_STATE_RUNNING);
    await record(t, run.taskId, [nodeResult('a'), finished('b', 0, 1)]);
    const events = await collectEvents(t, { taskId: run.taskId });
    assert.deepEqual(events.map(describeEvent), ['run RUN_STATE_PENDING', 'run RUN_STATE_RUNNING', 'a NODE_STATE_RUNNING', 'b NODE_STATE_SUCCEEDED']);
    for (const e of events) {
      assert.match(e.id, /^\d+-\d+$/);
      assert.equal(e.taskId, run.taskId);
      assert.ok(e.time instanceof Date);
    }
    assert.equal(new Set(events.map((e) => e.id)).size, events.length);
  });

  it('resumes after a token with only the later events', async () => {
    const run = await createRun(t, newRun(['a']));
    await setState(run.taskId, RunState.RUN_STATE_RUNNING);
    const first = await collectEvents(t, { taskId: run.taskId });
    await record(t, run.taskId, [nodeResult('a', { runtime: 1 })]);
    const later = await collectEvents(t, { taskId: run.taskId, resumeToken: first.at(-1)!.id });
    assert.deepEqual(later.map(describeEvent), ['a NODE_STATE_RUNNING']);
    assert.deepEqual(await collectEvents(t, { taskId: run.taskId, resumeToken: later[0].id }), []);
  });

  it('follows events recorded after it started and ends after the final state', async () => {
    const run = await createRun(t, newRun(['a', 'b']));
    await setState(run.taskId, RunState.RUN_STATE_RUNNING);
    const seen: string[] = [];
    const watching = collectEvents(t, { taskId: run.taskId, follow: true }, (e) => seen.push(describeEvent(e)));
    await waitFor('the catch-up events', () => seen.length === 2);
    await waitFor('a follower connection', async () => (await followerConnections(t)) === 1);
    await record(t, run.taskId, [finished('a', 0, 1)]);
    await waitFor('the first live event', () => seen.length === 3);
    await record(t, run.taskId, [finished('b', 1, 1)]);
    const events = await watching;
    assert.deepEqual(events.map(describeEvent), [
      'run RUN_STATE_PENDING',
      'run RUN_STATE_RUNNING',
      'a NODE_STATE_SUCCEEDED',
      'b NODE_STATE_FAILED',
      'run RUN_STATE_FAILED',
    ]);
    await waitFor('the follower connection to close', async () => (await followerConnections(t)) === 0);
  });

  it('ends at once when following a run that is final already, even after its last event', async () => {
    const run = await createRun(t, newRun(['a']));
    await setState(run.taskId, RunState.RUN_STATE_CANCELLED);
    const all = await collectEvents(t, { taskId: run.taskId, follow: true });
    assert.deepEqual(all.map(describeEvent), ['run RUN_STATE_PENDING', 'run RUN_STATE_CANCELLED']);
    assert.deepEqual(await collectEvents(t, { taskId: run.taskId, follow: true, resumeToken: all[1].id }), []);
  });

  it('frees its Redis connection when the client cancels', async () => {
    const run = await createRun(t, newRun(['a']));
    const stream = t.client.watchRunEvents({ taskId: run.taskId, resumeToken: '', follow: true });
    const ended = new Promise<ServiceError>((resolve) => stream.on('error', resolve));
    stream.on('data', () => {});
    await waitFor('a follower connection', async () => (await followerConnections(t)) === 1);
    stream.cancel();
    assert.equal((await ended).code, status.CANCELLED);
    await waitFor('the follower connection to close', async () => (await followerConnections(t)) === 0, 2_000);
  });

  it('rejects a resume token that is not an event id, and an unknown run', async () => {
    const run = await createRun(t, newRun(['a']));
    const bad = await grpcError(collectEvents(t, { taskId: run.taskId, resumeToken: 'yesterday' }));
    assert.equal(bad.code, status.INVALID_ARGUMENT);
    assert.deepEqual(
      readServiceError(bad).violations.map((v) => v.field),
      ['resume_token'],
    );
    assert.match(bad.details, /^resume_token: resume_token must be the id of an event of this run \(like 1700000000000-0\), got 'yesterday'$/);
    const unknown = await grpcError(collectEvents(t, { taskId: '1'.repeat(32) }));
    assert.equal(unknown.code, status.NOT_FOUND);
  });
});

describe('ResultsService WatchRunEvents on drain', () => {
  it('ends a following stream cleanly and promptly when the server drains', async () => {
    const t = await startResultsTestService(redisServer.url);
    const run = await createRun(t, newRun(['a']));
    const seen: RunEvent[] = [];
    const watching = collectEvents(t, { taskId: run.taskId, follow: true }, (e) => seen.push(e));
    await waitFor('a follower connection', async () => (await followerConnections(t)) === 1);
    const started = Date.now();
    await t.server.drain();
    const events = await watching; // resolves on a clean end (OK status), rejects on an error status
    assert.equal(events.length, 1);
    // Well inside both the 5 s XREAD slice and the 2 s drain grace, after which calls are cut.
    assert.ok(Date.now() - started < 1_000, `drain took ${Date.now() - started} ms`);
    await t.close();
  });
});
