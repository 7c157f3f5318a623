import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { ListRunsRequest } from '../../gen/baton/v1/results_service';
import { NodeState, RunState, type NodeResult } from '../../gen/baton/v1/run';
import { readServiceError } from '../../lib/errors';
import { unary } from '../../lib/grpc-client';
import { useRedisServer } from '../../test/helpers/redis';
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
let t: ResultsTestService;

const getStatus = (taskId: string) => unary(t.client, t.client.getRunStatus, { taskId });
const updateState = (taskId: string, state: RunState, reason = '') => unary(t.client, t.client.updateRunState, { taskId, state, reason });

/** What the service stores for a result it was given: task, caller and task id filled in. */
function stored(taskId: string, r: NodeResult): NodeResult {
  return { ...r, taskId, task: 'acme::deploy', callerid: 'user=alice' };
}

describe('ResultsService', () => {
  before(async () => {
    t = await startResultsTestService(redisServer.url);
  });
  after(async () => {
    await t.close();
  });

  describe('CreateRun', () => {
    it('stores the run as PENDING with a pending result per node and sorted nodes', async () => {
      const before = Date.now();
      const run = await createRun(t, newRun(['web-2', 'web-1']));
      assert.equal(run.state, RunState.RUN_STATE_PENDING);
      assert.deepEqual(run.nodes, ['web-1', 'web-2']);
      assert.ok(run.createTime && run.createTime.getTime() >= before - 1000);
      const res = await getStatus(run.taskId);
      assert.deepEqual(res.run, run);
      assert.deepEqual(
        res.items.map((r) => [r.host, r.state, r.exitcode, r.task, r.callerid, r.taskId]),
        [
          ['web-1', NodeState.NODE_STATE_PENDING, -1, 'acme::deploy', 'user=alice', run.taskId],
          ['web-2', NodeState.NODE_STATE_PENDING, -1, 'acme::deploy', 'user=alice', run.taskId],
        ],
      );
      assert.deepEqual(res.summary, { nodes: 2, taskid: run.taskId, completed: false, success: false });
      const events = await collectEvents(t, { taskId: run.taskId });
      assert.deepEqual(
        events.map((e) => e.event),
        [{ $case: 'runStateChanged', value: { state: RunState.RUN_STATE_PENDING, reason: '' } }],
      );
    });

    it('refuses a task id that exists with ALREADY_EXISTS and keeps the first run', async () => {
      const run = await createRun(t, newRun(['a']));
      const err = await grpcError(createRun(t, { ...run, task: 'other::task', nodes: ['b'] }));
      assert.equal(err.code, status.ALREADY_EXISTS);
      assert.match(err.details, new RegExp(`task id ${run.taskId} exists already`));
      assert.equal((await getStatus(run.taskId)).run?.task, 'acme::deploy');
    });

    it('rejects a run without a valid task id, task or nodes, naming each problem', async () => {
      const err = await grpcError(createRun(t, newRun([], { taskId: 'ABC', task: '' })));
      assert.equal(err.code, status.INVALID_ARGUMENT);
      const report = readServiceError(err);
      assert.deepEqual(
        report.violations.map((v) => v.field),
        ['run.task_id', 'run.task', 'run.nodes'],
      );
      assert.match(report.message, /^run\.task_id: 'ABC' is not a task id; expected 32 lowercase hex characters \(and 2 more problems\)$/);
      const dup = readServiceError(await grpcError(createRun(t, newRun(['a', 'a']))));
      assert.deepEqual(dup.violations, [{ field: 'run.nodes[1]', description: 'node "a" is listed twice' }]);
    });
  });

  describe('RecordNodeResults and GetRunStatus', () => {
    it('returns the mco tasks status document of a mixed run', async () => {
      const run = await createRun(t, newRun(['ok', 'taskfail', 'wrapper', 'silent', 'busy']));
      await updateState(run.taskId, RunState.RUN_STATE_RUNNING);
      const results = [
        finished('ok', 0, 2),
        finished('taskfail', 1, 4),
        nodeResult('wrapper', { state: NodeState.NODE_STATE_FAILED, statuscode: 5, statusmsg: 'could not spawn the task wrapper', exitcode: -1 }),
        nodeResult('silent', { state: NodeState.NODE_STATE_NO_RESPONSE }),
        nodeResult('busy', { state: NodeState.NODE_STATE_RUNNING, runtime: 3 }),
      ];
      assert.equal(await record(t, run.taskId, results), 5);
      const res = await getStatus(run.taskId);
      const byHost = new Map(results.map((r) => [r.host, stored(run.taskId, r)]));
      assert.deepEqual(
        res.items,
        ['busy', 'ok', 'silent', 'taskfail', 'wrapper'].map((h) => byHost.get(h)),
      );
      assert.deepEqual(res.stats, {
        names: ['acme::deploy'],
        callers: ['user=alice'],
        completed: 2,
        running: 1,
        taskNotKnown: 0,
        wrapperFailure: 1,
        success: 1,
        failed: 3,
        averageRuntime: 3,
        noresponses: ['silent'],
      });
      assert.deepEqual(res.summary, { nodes: 5, taskid: run.taskId, completed: false, success: false });
      assert.equal(res.run?.state, RunState.RUN_STATE_RUNNING, 'one node still runs, so the run is not final');
    });

    it('records the same final result twice only once', async () => {
      const run = await createRun(t, newRun(['a', 'b']));
      const done = finished('a', 0, 1);
      assert.equal(await record(t, run.taskId, [done]), 1);
      assert.equal(await record(t, run.taskId, [done]), 0);
      // The same content with the value's keys in another order is the same result.
      assert.equal(await record(t, run.taskId, [{ ...done, value: { done: true } }]), 0);
      const events = await collectEvents(t, { taskId: run.taskId });
      assert.equal(events.filter((e) => e.event?.$case === 'nodeResult').length, 1);
    });

    it('never lets a late RUNNING overwrite a final result, but lets a late answer replace NO_RESPONSE', async () => {
      const run = await createRun(t, newRun(['a', 'b']));
      assert.equal(await record(t, run.taskId, [finished('a', 0, 1), nodeResult('b', { state: NodeState.NODE_STATE_NO_RESPONSE })]), 2);
      assert.equal(await record(t, run.taskId, [nodeResult('a', { runtime: 0.5 }), nodeResult('b', { runtime: 0.5 })]), 0);
      let items = (await getStatus(run.taskId)).items;
      assert.deepEqual(
        items.map((r) => r.state),
        [NodeState.NODE_STATE_SUCCEEDED, NodeState.NODE_STATE_NO_RESPONSE],
      );
      assert.equal(await record(t, run.taskId, [finished('b', 0, 7)]), 1);
      items = (await getStatus(run.taskId)).items;
      assert.deepEqual(items[1], stored(run.taskId, finished('b', 0, 7)));
    });

    it('never lets a NO_RESPONSE replace a final result, while a later answer replaces the NO_RESPONSE', async () => {
      const run = await createRun(t, newRun(['a', 'b']));
      const lost = (host: string) =>
        nodeResult(host, { state: NodeState.NODE_STATE_NO_RESPONSE, exitcode: -1, statusmsg: 'agent lost: the agent has been gone' });
      assert.equal(await record(t, run.taskId, [finished('a', 0, 1), nodeResult('b')]), 2);
      // a answered before its agent went; b's agent went while it ran.
      assert.equal(await record(t, run.taskId, [lost('a'), lost('b')]), 1);
      let items = (await getStatus(run.taskId)).items;
      assert.deepEqual(items[0], stored(run.taskId, finished('a', 0, 1)));
      assert.equal(items[1].state, NodeState.NODE_STATE_NO_RESPONSE);
      assert.equal(items[1].statusmsg, 'agent lost: the agent has been gone');
      // Recorded again (a second check), nothing changes; b's real result, when its agent is back, replaces it.
      assert.equal(await record(t, run.taskId, [lost('b')]), 0);
      assert.equal(await record(t, run.taskId, [finished('b', 1, 3)]), 1);
      items = (await getStatus(run.taskId)).items;
      assert.deepEqual(items[1], stored(run.taskId, finished('b', 1, 3)));
      const finals = (await collectEvents(t, { taskId: run.taskId })).filter((e) => e.event?.$case === 'nodeResult' && e.event.value.host === 'a');
      assert.equal(finals.length, 1, "a's answer is its only event: the NO_RESPONSE never replaced it");
    });

    it('moves a RUNNING run to SUCCEEDED when the last node succeeds, with an end time and an event', async () => {
      const run = await createRun(t, newRun(['a', 'b']));
      await updateState(run.taskId, RunState.RUN_STATE_RUNNING);
      await record(t, run.taskId, [finished('a', 0, 1), nodeResult('b')]);
      assert.equal((await getStatus(run.taskId)).run?.state, RunState.RUN_STATE_RUNNING);
      await record(t, run.taskId, [finished('b', 0, 1)]);
      const res = await getStatus(run.taskId);
      assert.equal(res.run?.state, RunState.RUN_STATE_SUCCEEDED);
      assert.ok(res.run?.endTime instanceof Date);
      assert.deepEqual(res.summary, { nodes: 2, taskid: run.taskId, completed: true, success: true });
      const events = await collectEvents(t, { taskId: run.taskId });
      assert.deepEqual(events.at(-1)?.event, { $case: 'runStateChanged', value: { state: RunState.RUN_STATE_SUCCEEDED, reason: '' } });
    });

    it('moves a RUNNING run to FAILED when the last node reports and one failed', async () => {
      const run = await createRun(t, newRun(['a', 'b']));
      await updateState(run.taskId, RunState.RUN_STATE_RUNNING);
      await record(t, run.taskId, [finished('a', 1, 1)]);
      await record(t, run.taskId, [nodeResult('b', { state: NodeState.NODE_STATE_NO_RESPONSE })]);
      assert.equal((await getStatus(run.taskId)).run?.state, RunState.RUN_STATE_FAILED);
    });

    it('finalises a run exactly once when its last results arrive in concurrent calls', async () => {
      const hosts = Array.from({ length: 20 }, (_, i) => `node-${String(i).padStart(2, '0')}`);
      const run = await createRun(t, newRun(hosts));
      await updateState(run.taskId, RunState.RUN_STATE_RUNNING);
      const recorded = await Promise.all(hosts.map((h) => record(t, run.taskId, [finished(h, 0, 1)])));
      assert.deepEqual(
        recorded,
        hosts.map(() => 1),
      );
      const events = await collectEvents(t, { taskId: run.taskId });
      assert.equal(events.filter((e) => e.event?.$case === 'nodeResult').length, 20);
      const states = events.flatMap((e) => (e.event?.$case === 'runStateChanged' ? [e.event.value.state] : []));
      assert.deepEqual(states, [RunState.RUN_STATE_PENDING, RunState.RUN_STATE_RUNNING, RunState.RUN_STATE_SUCCEEDED]);
    });

    it('keeps a CANCELLED run CANCELLED when node results arrive afterwards', async () => {
      const run = await createRun(t, newRun(['a', 'b']));
      await updateState(run.taskId, RunState.RUN_STATE_RUNNING);
      await updateState(run.taskId, RunState.RUN_STATE_CANCELLED, 'cancelled');
      assert.equal(await record(t, run.taskId, [finished('a', 0, 1), finished('b', 1, 1)]), 2);
      const res = await getStatus(run.taskId);
      assert.equal(res.run?.state, RunState.RUN_STATE_CANCELLED);
      assert.deepEqual(res.summary, { nodes: 2, taskid: run.taskId, completed: true, success: false });
      const states = (await collectEvents(t, { taskId: run.taskId })).flatMap((e) => (e.event?.$case === 'runStateChanged' ? [e.event.value.state] : []));
      assert.deepEqual(states, [RunState.RUN_STATE_PENDING, RunState.RUN_STATE_RUNNING, RunState.RUN_STATE_CANCELLED]);
    });

    it('ends a RUNNING run CANCELLED when its nodes are all final and one was cancelled', async () => {
      const run = await createRun(t, newRun(['a', 'b', 'c']));
      await updateState(run.taskId, RunState.RUN_STATE_RUNNING);
      await record(t, run.taskId, [finished('a', 0, 1), finished('b', 1, 1), nodeResult('c', { state: NodeState.NODE_STATE_CANCELLED, statuscode: 1 })]);
      const res = await getStatus(run.taskId);
      assert.equal(res.run?.state, RunState.RUN_STATE_CANCELLED);
      assert.ok(res.run?.endTime instanceof Date);
      // The scheduler's own UpdateRunState CANCELLED arriving afterwards changes nothing.
      assert.equal((await updateState(run.taskId, RunState.RUN_STATE_CANCELLED, 'cancelled')).run?.state, RunState.RUN_STATE_CANCELLED);
    });

    it('finalises a run whose results all arrived before it became RUNNING', async () => {
      const run = await createRun(t, newRun(['a']));
      await updateState(run.taskId, RunState.RUN_STATE_DOWNLOADING);
      await record(t, run.taskId, [finished('a', 0, 1)]);
      assert.equal((await getStatus(run.taskId)).run?.state, RunState.RUN_STATE_DOWNLOADING);
      const res = await updateState(run.taskId, RunState.RUN_STATE_RUNNING);
      assert.equal(res.run?.state, RunState.RUN_STATE_SUCCEEDED);
      const states = (await collectEvents(t, { taskId: run.taskId })).flatMap((e) => (e.event?.$case === 'runStateChanged' ? [e.event.value.state] : []));
      assert.deepEqual(states, [RunState.RUN_STATE_PENDING, RunState.RUN_STATE_DOWNLOADING, RunState.RUN_STATE_RUNNING, RunState.RUN_STATE_SUCCEEDED]);
    });

    it('rejects a result for a host outside the run, naming it, and records nothing', async () => {
      const run = await createRun(t, newRun(['a', 'b']));
      const eventsBefore = await collectEvents(t, { taskId: run.taskId });
      const err = await grpcError(record(t, run.taskId, [finished('a', 0, 1), finished('intruder', 0, 1)]));
      assert.equal(err.code, status.INVALID_ARGUMENT);
      assert.equal(err.details, `results[1].host: host "intruder" is not one of the nodes of run ${run.taskId}`);
      assert.deepEqual(
        readServiceError(err).violations.map((v) => v.field),
        ['results[1].host'],
      );
      const res = await getStatus(run.taskId);
      assert.deepEqual(
        res.items.map((r) => r.state),
        [NodeState.NODE_STATE_PENDING, NodeState.NODE_STATE_PENDING],
      );
      assert.equal((await collectEvents(t, { taskId: run.taskId })).length, eventsBefore.length);
    });

    it('answers NOT_FOUND for results of an unknown run', async () => {
      const err = await grpcError(record(t, 'f'.repeat(32), [finished('a', 0, 1)]));
      assert.equal(err.code, status.NOT_FOUND);
      assert.equal(err.details, `no run with task id ${'f'.repeat(32)}`);
    });
  });

  describe('UpdateRunState', () => {
    it('records the reason of a failure as the run error, with an end time and an event', async () => {
      const run = await createRun(t, newRun(['a']));
      const res = await updateState(run.taskId, RunState.RUN_STATE_FAILED, 'could not download the task onto a');
      assert.equal(res.run?.state, RunState.RUN_STATE_FAILED);
      assert.equal(res.run?.error, 'could not download the task onto a');
      assert.ok(res.run?.endTime instanceof Date);
      const events = await collectEvents(t, { taskId: run.taskId });
      assert.deepEqual(events.at(-1)?.event, {
        $case: 'runStateChanged',
        value: { state: RunState.RUN_STATE_FAILED, reason: 'could not download the task onto a' },
      });
      // The same update again changes nothing.
      await updateState(run.taskId, RunState.RUN_STATE_FAILED, 'could not download the task onto a');
      assert.equal((await collectEvents(t, { taskId: run.taskId })).length, events.length);
    });

    it('refuses to move a finished run back with FAILED_PRECONDITION', async () => {
      const run = await createRun(t, newRun(['a']));
      await updateState(run.taskId, RunState.RUN_STATE_CANCELLED);
      const err = await grpcError(updateState(run.taskId, RunState.RUN_STATE_RUNNING));
      assert.equal(err.code, status.FAILED_PRECONDITION);
      assert.equal(err.details, `run ${run.taskId} is RUN_STATE_CANCELLED already; a finished run cannot become RUN_STATE_RUNNING`);
      assert.equal((await getStatus(run.taskId)).run?.state, RunState.RUN_STATE_CANCELLED);
    });

    it('rejects an unspecified state and answers NOT_FOUND for an unknown run', async () => {
      const run = await createRun(t, newRun(['a']));
      const bad = await grpcError(updateState(run.taskId, RunState.RUN_STATE_UNSPECIFIED));
      assert.equal(bad.code, status.INVALID_ARGUMENT);
      assert.deepEqual(
        readServiceError(bad).violations.map((v) => v.field),
        ['state'],
      );
      assert.equal((await grpcError(updateState('0'.repeat(32), RunState.RUN_STATE_RUNNING))).code, status.NOT_FOUND);
    });
  });

  describe('bad task ids', () => {
    it('answers INVALID_ARGUMENT saying what a task id looks like, on every call', async () => {
      const calls: Array<Promise<unknown>> = [
        getStatus('not-a-task-id'),
        record(t, 'not-a-task-id', []),
        updateState('not-a-task-id', RunState.RUN_STATE_RUNNING),
        collectEvents(t, { taskId: 'not-a-task-id' }),
      ];
      for (const call of calls) {
        const err = await grpcError(call);
        assert.equal(err.code, status.INVALID_ARGUMENT);
        assert.equal(err.details, "task_id: 'not-a-task-id' is not a task id; expected 32 lowercase hex characters");
        assert.deepEqual(readServiceError(err).violations, [
          { field: 'task_id', description: "'not-a-task-id' is not a task id; expected 32 lowercase hex characters" },
        ]);
      }
      assert.equal((await grpcError(getStatus('e'.repeat(32)))).code, status.NOT_FOUND);
    });
  });

  describe('ListRuns', () => {
    it('lists runs newest first, page by page, with an empty token on the last page', async () => {
      const other = await startResultsTestService(redisServer.url);
      try {
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) {
          const run = await createRun(other, newRun(['a'], { createTime: new Date(Date.UTC(2024, 0, 1, 0, 0, i)) }));
          ids.push(run.taskId);
        }
        const newestFirst = [...ids].reverse();
        const all = await unary(other.client, other.client.listRuns, { pageSize: 0, pageToken: '' });
        assert.deepEqual(
          all.runs.map((r) => r.taskId),
          newestFirst,
        );
        assert.equal(all.nextPageToken, '');

        const seen: string[][] = [];
        let token = '';
        do {
          const page = await unary(other.client, other.client.listRuns, { pageSize: 2, pageToken: token });
          seen.push(page.runs.map((r) => r.taskId));
          token = page.nextPageToken;
          // A run created between pages is newer than all of them: it must not shift the pages.
          if (seen.length === 1) await createRun(other, newRun(['a'], { createTime: new Date(Date.UTC(2024, 0, 2)) }));
        } while (token);
        assert.deepEqual(seen, [newestFirst.slice(0, 2), newestFirst.slice(2, 4), newestFirst.slice(4)]);

        const bad = await grpcError(unary(other.client, other.client.listRuns, { pageSize: 2, pageToken: 'garbage' }));
        assert.equal(bad.code, status.INVALID_ARGUMENT);
        assert.equal(bad.details, 'page_token is not a next_page_token of ListRuns; leave it empty for the first page');
      } finally {
        await other.close();
      }
    });

    /** Every run ListRuns gives for `filters`, following page tokens, and the number of pages. */
    async function listAll(s: ResultsTestService, filters: Partial<ListRunsRequest>, pageSize: number): Promise<{ ids: string[]; pages: number }> {
      const ids: string[] = [];
      let pages = 0;
      let pageToken = '';
      do {
        const page = await unary(s.client, s.client.listRuns, ListRunsRequest.fromPartial({ ...filters, pageSize, pageToken }));
        assert.ok(page.runs.length <= pageSize);
        ids.push(...page.runs.map((r) => r.taskId));
        pages++;
        pageToken = page.nextPageToken;
      } while (pageToken);
      return { ids, pages };
    }

    it('filters by task, caller and creation time, alone or combined, page by page', async () => {
      const other = await startResultsTestService(redisServer.url);
      try {
        const at = (minute: number) => new Date(Date.UTC(2024, 0, 1, 0, minute));
        // Twelve runs a minute apart: tasks alternate acme::deploy / acme::backup, callers
        // cycle through alice, bob, carol.
        const made: Array<{ id: string; task: string; caller: string; minute: number }> = [];
        for (let minute = 0; minute < 12; minute++) {
          const task = minute % 2 === 0 ? 'acme::deploy' : 'acme::backup';
          const caller = `user=${['alice', 'bob', 'carol'][minute % 3]}`;
          const run = await createRun(other, newRun(['a'], { task, caller, createTime: at(minute) }));
          made.push({ id: run.taskId, task, caller, minute });
        }
        const expect = (keep: (m: (typeof made)[number]) => boolean) =>
          made
            .filter(keep)
            .reverse()
            .map((m) => m.id);
        const cases: Array<[Partial<ListRunsRequest>, string[]]> = [
          [{ task: 'acme::deploy' }, expect((m) => m.task === 'acme::deploy')],
          [{ caller: 'user=bob' }, expect((m) => m.caller === 'user=bob')],
          [{ task: 'acme::backup', caller: 'user=alice' }, expect((m) => m.task === 'acme::backup' && m.caller === 'user=alice')],
          [{ createdAfter: at(3), createdBefore: at(9) }, expect((m) => m.minute > 3 && m.minute < 9)],
          [{ createdAfter: at(2) }, expect((m) => m.minute > 2)],
          [{ createdBefore: at(2) }, expect((m) => m.minute < 2)],
          [
            { task: 'acme::deploy', caller: 'user=carol', createdAfter: at(0), createdBefore: at(11) },
            expect((m) => m.task === 'acme::deploy' && m.caller === 'user=carol' && m.minute > 0 && m.minute < 11),
          ],
          [{ task: 'acme::other' }, []],
          [{ createdAfter: at(9), createdBefore: at(3) }, []],
        ];
        for (const [filters, want] of cases) {
          for (const pageSize of [1, 2, 50]) {
            const { ids } = await listAll(other, filters, pageSize);
            assert.deepEqual(ids, want, `${JSON.stringify(filters)} with page_size ${pageSize}`);
          }
        }
        // An empty task or caller is no filter, as an unset one.
        assert.equal((await listAll(other, { task: '', caller: '' }, 50)).ids.length, 12);
      } finally {
        await other.close();
      }
    });

    it('refuses a page token of another filter combination, and a malformed task filter', async () => {
      const other = await startResultsTestService(redisServer.url);
      try {
        for (let i = 0; i < 3; i++) await createRun(other, newRun(['a'], { caller: 'user=bob' }));
        const first = await unary(other.client, other.client.listRuns, ListRunsRequest.fromPartial({ pageSize: 1, caller: 'user=bob' }));
        assert.notEqual(first.nextPageToken, '');
        for (const filters of [{}, { caller: 'user=alice' }, { caller: 'user=bob', task: 'acme::deploy' }, { caller: 'user=bob', createdAfter: new Date(0) }]) {
          const err = await grpcError(
            unary(other.client, other.client.listRuns, ListRunsRequest.fromPartial({ ...filters, pageSize: 1, pageToken: first.nextPageToken })),
          );
          assert.equal(err.code, status.INVALID_ARGUMENT);
          assert.match(err.details, /^page_token belongs to a ListRuns request with other filters/);
          assert.deepEqual(
            readServiceError(err).violations.map((v) => v.field),
            ['page_token'],
          );
        }
        // The same filters go on.
        const second = await unary(
          other.client,
          other.client.listRuns,
          ListRunsRequest.fromPartial({ pageSize: 1, caller: 'user=bob', pageToken: first.nextPageToken }),
        );
        assert.equal(second.runs.length, 1);
        assert.notEqual(second.runs[0].taskId, first.runs[0].taskId);

        const bad = await grpcError(unary(other.client, other.client.listRuns, ListRunsRequest.fromPartial({ task: 'Acme::Deploy; rm' })));
        assert.equal(bad.code, status.INVALID_ARGUMENT);
        assert.equal(bad.details, "task: task must be a canonical task name such as acme::deploy, got 'Acme::Deploy; rm'");
      } finally {
        await other.close();
      }
    });

    it('returns at most 500 runs per page, whatever page_size asks for', async () => {
      const other = await startResultsTestService(redisServer.url);
      try {
        const total = 520;
        for (let start = 0; start < total; start += 40) {
          await Promise.all(Array.from({ length: Math.min(40, total - start) }, () => createRun(other, newRun(['a'], { task: 'acme::bulk' }))));
        }
        for (const filters of [{}, { task: 'acme::bulk' }]) {
          const page = await unary(other.client, other.client.listRuns, ListRunsRequest.fromPartial({ ...filters, pageSize: 1000 }));
          assert.equal(page.runs.length, 500);
          assert.notEqual(page.nextPageToken, '');
          const rest = await unary(
            other.client,
            other.client.listRuns,
            ListRunsRequest.fromPartial({ ...filters, pageSize: 1000, pageToken: page.nextPageToken }),
          );
          assert.equal(rest.runs.length, total - 500);
          assert.equal(rest.nextPageToken, '');
          assert.equal(new Set([...page.runs, ...rest.runs].map((r) => r.taskId)).size, total);
        }
      } finally {
        await other.close();
      }
    });
  });
});
