import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { RedisClient as Redis } from '../../lib/redis-client';
import { NodeResult, NodeState, RunState, type Run } from '../../gen/baton/v1/run';
import { createLogger } from '../../lib/logger';
import { closeRedis, createRedis, RedisKeys } from '../../lib/redis';
import { useRedisServer, uniquePrefix } from '../../test/helpers/redis';
import { newRun } from '../../test/helpers/results-service';
import { headerOf } from './run-header';
import { ALL_RUNS, type RunQuery } from './run-query';
import { CREATE_SLICE_NODES, eventLogCap, MAX_ENTRIES_SCANNED_PER_PAGE, RunStore } from './run-store';

const redisServer = useRedisServer();
let redis: Redis;

function freshStore(): RunStore {
  return new RunStore(redis, new RedisKeys(uniquePrefix()));
}

/** Creates a run as CreateRun stores it (PENDING, the given creation time). */
async function create(store: RunStore, fields: Partial<Run>): Promise<Run> {
  const run = newRun(['a'], { state: RunState.RUN_STATE_PENDING, createTime: new Date(0), ...fields });
  assert.equal(await store.createRun(run, new Date()), true);
  return run;
}

/** Every run of `query`, following cursors; and the number of pages it took. */
async function listAll(store: RunStore, query: RunQuery, pageSize: number): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let cursor;
  let pages = 0;
  do {
    const page = await store.listRuns(query, cursor, pageSize);
    ids.push(...page.runs.map((r) => r.taskId));
    cursor = page.next;
    pages++;
  } while (cursor);
  return { ids, pages };
}

describe('RunStore', () => {
  before(() => {
    redis = createRedis({ url: redisServer.url, log: createLogger('results', 'silent'), connectionName: 'run-store-test' });
  });
  after(async () => {
    await closeRedis(redis);
  });

  it('writes a run and its entries in the runs, task and caller indexes together, and nothing for a task id that exists', async () => {
    const store = freshStore();
    const run = await create(store, { task: 'acme::deploy', caller: 'user=alice', createTime: new Date(1234) });
    const k = store.keys;
    assert.deepEqual(
      await Promise.all([
        redis.zscore(k.runs(), run.taskId),
        redis.zscore(k.runsByTask('acme::deploy'), run.taskId),
        redis.zscore(k.runsByCaller('user=alice'), run.taskId),
      ]),
      ['1234', '1234', '1234'],
    );
    assert.equal(await store.createRun({ ...run, task: 'acme::backup', caller: 'user=bob', createTime: new Date(99) }, new Date()), false);
    assert.equal((await redis.exists(k.runsByTask('acme::backup'))) + (await redis.exists(k.runsByCaller('user=bob'))), 0);
    assert.equal(await redis.zscore(k.runs(), run.taskId), '1234');
  });

  it('creates a run of more nodes than one creation slice whole, and only one of two creations of one task id at once', async () => {
    const store = freshStore();
    const nodes = Array.from({ length: CREATE_SLICE_NODES * 2 + 7 }, (_, i) => `n${String(i).padStart(5, '0')}`);
    const run = newRun(nodes, { state: RunState.RUN_STATE_PENDING, createTime: new Date(0) });
    const outcomes = await Promise.all([store.createRun(run, new Date()), store.createRun({ ...run, task: 'acme::other' }, new Date())]);
    assert.deepEqual(
      outcomes.filter((created) => created),
      [true],
    );
    const k = store.keys;
    const results = await store.getResults(run.taskId);
    assert.equal(results.size, nodes.length);
    assert.ok([...results.values()].every((r) => r.state === NodeState.NODE_STATE_PENDING));
    const briefs = await store.getBriefs(run.taskId);
    assert.deepEqual(
      briefs.map((b) => Number(b.split(',')[0])).sort((a, b) => a - b),
      nodes.map((_, i) => i),
    );
    assert.equal((await store.getHeader(run.taskId))?.nodes, nodes.length);
    assert.equal(await redis.xlen(k.runEvents(run.taskId)), 1);
    assert.equal(await redis.exists(k.runCreation(run.taskId)), 0, 'the creation claim is dropped once the run is made');
  });

  it('never shows a creation that died half-way as a run, and creates the task id afresh once its claim expired', async () => {
    const store = freshStore();
    const k = store.keys;
    const run = newRun(['a', 'b'], { state: RunState.RUN_STATE_PENDING, createTime: new Date(0) });
    // What an attempt that died after its first slice leaves: its claim and a partial results hash.
    await redis.set(k.runCreation(run.taskId), 'dead-attempt', 'PX', 300);
    await redis.hset(k.runResults(run.taskId), 'stale', '{}');
    assert.equal(await store.createRun(run, new Date()), false, 'refused while the claim lives');
    assert.equal(await store.getRun(run.taskId), undefined);
    assert.equal(await store.getHeader(run.taskId), undefined);
    const deadline = Date.now() + 5_000;
    while ((await redis.exists(k.runCreation(run.taskId))) === 1) {
      assert.ok(Date.now() < deadline, "the dead attempt's claim never expired");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(await store.createRun(run, new Date()), true);
    assert.deepEqual([...(await store.getResults(run.taskId)).keys()].sort(), ['a', 'b']);
  });

  it('pages through runs with equal creation times without repeating or losing one, also after the last run of a page is removed', async () => {
    const store = freshStore();
    const runs = [];
    for (let i = 0; i < 7; i++) runs.push(await create(store, { createTime: new Date(1000 + Math.floor(i / 3)) }));
    const all = (await listAll(store, ALL_RUNS, 100)).ids;
    assert.equal(all.length, 7);
    assert.equal((await listAll(store, ALL_RUNS, 2)).ids.join(), all.join());
    // The cursor's run leaves the index between two pages (retention): the next page starts
    // right after where it was, ties on the creation time included.
    for (let cut = 1; cut < 6; cut++) {
      const other = freshStore();
      const made = [];
      for (let i = 0; i < 7; i++) made.push(await create(other, { createTime: new Date(1000 + Math.floor(i / 3)) }));
      const order = (await listAll(other, ALL_RUNS, 100)).ids;
      const first = await other.listRuns(ALL_RUNS, undefined, cut);
      const gone = made.find((r) => r.taskId === order[cut - 1])!;
      const raw = await redis.get(other.keys.run(gone.taskId));
      assert.equal(await other.deleteRun({ taskId: gone.taskId, raw: raw!, run: gone }), true);
      const rest = await other.listRuns(ALL_RUNS, first.next, 100);
      assert.deepEqual(
        rest.runs.map((r) => r.taskId),
        order.slice(cut),
        `cut after ${cut}`,
      );
    }
  });

  it('answers task and caller together from one index, in pages that stop after a bounded scan', async () => {
    const store = freshStore();
    const k = store.keys;
    // Many runs of acme::deploy by alice and of acme::other by bob, and three of acme::deploy
    // by bob among them: both indexes are large, the answer small. Written with the real
    // create script, pipelined, for speed.
    const noise = MAX_ENTRIES_SCANNED_PER_PAGE + 200;
    const wanted: string[] = [];
    const pending: Array<Promise<boolean>> = [];
    for (let i = 0; i < noise; i++) {
      pending.push(
        store.createRun(
          newRun(['a'], { state: RunState.RUN_STATE_PENDING, task: 'acme::deploy', caller: 'user=alice', createTime: new Date(10_000 + 2 * i) }),
          new Date(),
        ),
      );
      pending.push(
        store.createRun(
          newRun(['a'], { state: RunState.RUN_STATE_PENDING, task: 'acme::other', caller: 'user=bob', createTime: new Date(10_000 + 2 * i + 1) }),
          new Date(),
        ),
      );
    }
    await Promise.all(pending);
    for (const ms of [5_000, 10_000 + noise, 10_000 + 2 * noise + 5]) {
      wanted.unshift((await create(store, { task: 'acme::deploy', caller: 'user=bob', createTime: new Date(ms) })).taskId);
    }
    assert.ok((await redis.zcard(k.runsByTask('acme::deploy'))) > MAX_ENTRIES_SCANNED_PER_PAGE);
    assert.ok((await redis.zcard(k.runsByCaller('user=bob'))) > MAX_ENTRIES_SCANNED_PER_PAGE);
    const query: RunQuery = { ...ALL_RUNS, task: 'acme::deploy', caller: 'user=bob' };
    const first = await store.listRuns(query, undefined, 10);
    assert.ok(
      first.runs.length < wanted.length && first.next,
      `a page scans at most ${MAX_ENTRIES_SCANNED_PER_PAGE} entries: a short first page with a cursor to go on`,
    );
    for (const pageSize of [1, 2, 10]) assert.deepEqual((await listAll(store, query, pageSize)).ids, wanted, `page size ${pageSize}`);
  });

  it('caps every run event log near a bound derived from its node count', async () => {
    const store = freshStore();
    const run = await create(store, { nodes: ['a'], state: RunState.RUN_STATE_RUNNING });
    const cap = eventLogCap(1);
    const flood = Array.from({ length: 3 * cap }, (_, i) => ({ ...newResult(run), runtime: i + 1 }));
    assert.deepEqual(await store.recordResults(headerOf(run), flood, new Date()), {
      outcome: 'recorded',
      changed: flood.length,
      finalHosts: 0,
      state: RunState.RUN_STATE_RUNNING,
    });
    const length = await redis.xlen(store.keys.runEvents(run.taskId));
    // MAXLEN ~ trims whole stream nodes (100 entries by default): at most one node over.
    assert.ok(length >= cap && length <= cap + 100, `event log holds ${length} entries, cap ${cap}`);
    const last = (await store.readEvents(run.taskId, undefined, 100_000)).at(-1);
    assert.equal(last?.event?.$case === 'nodeResult' ? last.event.value.runtime : undefined, flood.length, 'the newest events are kept');
  });
});

/** A RUNNING report of node `a` of `run`. */
function newResult(run: Run): NodeResult {
  return NodeResult.fromPartial({ host: 'a', taskId: run.taskId, task: run.task, callerid: run.caller, state: NodeState.NODE_STATE_RUNNING, exitcode: -1 });
}
