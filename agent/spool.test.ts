import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunCommand } from '../gen/baton/v1/agent_gateway_service';
import { NodeState, type NodeResult } from '../gen/baton/v1/run';
import { InputMethod } from '../gen/baton/v1/task';
import { newTaskId } from '../lib/task-id';
import { REDACTED_VALUE } from '../lib/redaction';
import { InvalidTaskIdError, Spool, redactInput } from './spool';

function tempSpool(): { root: string; spool: Spool } {
  const parent = mkdtempSync(join(tmpdir(), 'baton-spool-'));
  const root = join(parent, 'spool');
  mkdirSync(root);
  return { root, spool: new Spool(root) };
}

function result(taskId: string, startTime: Date): NodeResult {
  return {
    host: 'node1',
    taskId,
    task: 'acme::hello',
    callerid: 'user=alice',
    state: NodeState.NODE_STATE_SUCCEEDED,
    exitcode: 0,
    stdout: 'hi\n',
    stderr: '',
    value: { _output: 'hi\n' },
    completed: true,
    runtime: 0.25,
    startTime,
    statuscode: 0,
    statusmsg: '',
  };
}

describe('Spool', () => {
  it('rejects a task id that is not 32 lowercase hex before building any path', async () => {
    const { root, spool } = tempSpool();
    assert.throws(() => spool.paths('../x'), InvalidTaskIdError);
    await assert.rejects(spool.create('../x'), /'\.\.\/x' is not a task id; expected 32 lowercase hex characters/);
    assert.equal(await spool.markAcked('../x'), false);
    assert.deepEqual(readdirSync(join(root, '..')), ['spool'], 'nothing created next to the spool');
    assert.deepEqual(readdirSync(root), []);
  });

  it('creates a task id directory once; the second create reports it exists', async () => {
    const { spool } = tempSpool();
    const id = newTaskId();
    assert.equal(await spool.create(id), true);
    assert.equal(await spool.create(id), false);
    assert.equal(await spool.exists(id), true);
  });

  it('sweeps acknowledged runs older than the retention age, never a run without a result, an unacknowledged one, or one held by the runner', async () => {
    const { spool } = tempSpool();
    const [acked, unacked, running, held] = [newTaskId(), newTaskId(), newTaskId(), newTaskId()];
    for (const id of [acked, unacked, held]) {
      await spool.create(id);
      await spool.writeResult(result(id, new Date('2030-01-01T00:00:01Z')));
    }
    await spool.create(running);
    await spool.markAcked(acked);
    await spool.markAcked(held);
    const hourMs = 3600_000;
    assert.deepEqual(await spool.sweep(hourMs, () => false), [], 'nothing is old yet');
    const later = Date.now() + 2 * hourMs;
    assert.deepEqual(await spool.sweep(hourMs, (id) => id === held, later), [acked]);
    assert.deepEqual((await spool.taskIds()).sort(), [unacked, running, held].sort());
  });

  it('lists results without an acked marker until they are acknowledged', async () => {
    const { root, spool } = tempSpool();
    const [a, b] = [newTaskId(), newTaskId()];
    for (const [id, t] of [
      [b, new Date('2030-01-01T00:00:02Z')],
      [a, new Date('2030-01-01T00:00:01Z')],
    ] as const) {
      await spool.create(id);
      await spool.writeResult(result(id, t));
    }
    await spool.create(newTaskId()); // running: no result yet
    mkdirSync(join(root, 'not-a-task')); // foreign entries are not runs
    writeFileSync(join(root, 'junk.json'), '{}');

    const listed = await spool.listUnacknowledged();
    assert.deepEqual(
      listed.map((r) => r.taskId),
      [a, b],
      'oldest first',
    );
    assert.deepEqual(listed[0], result(a, new Date('2030-01-01T00:00:01Z')), 'result.json round-trips');

    assert.equal(await spool.markAcked(a), true);
    assert.deepEqual(
      (await spool.listUnacknowledged()).map((r) => r.taskId),
      [b],
    );
    assert.equal(await spool.markAcked(newTaskId()), false, 'an ack for an unknown run writes nothing');
    assert.equal(await spool.markAcked(b), true);
    assert.deepEqual(await spool.listUnacknowledged(), []);
  });

  it('never writes a sensitive parameter value to request.json', async () => {
    const { spool } = tempSpool();
    const id = newTaskId();
    const cmd = RunCommand.fromPartial({
      taskId: id,
      task: 'acme::deploy',
      environment: 'production',
      executable: 'acme/tasks/deploy.sh',
      inputMethod: InputMethod.INPUT_METHOD_BOTH,
      inputJson: JSON.stringify({ user: 'bob', password: 'hunter2-very-secret', token: { nested: 'also-secret-123' } }),
      sensitiveParameters: ['password', 'token'],
      caller: 'user=alice',
    });
    await spool.create(id);
    await spool.writeRequest(cmd);
    const text = readFileSync(spool.paths(id).request, 'utf8');
    assert.ok(!text.includes('hunter2-very-secret') && !text.includes('also-secret-123'), text);
    const stored = JSON.parse(text) as { inputJson: string; task: string };
    assert.deepEqual(JSON.parse(stored.inputJson), { user: 'bob', password: REDACTED_VALUE, token: REDACTED_VALUE });
    assert.equal(stored.task, 'acme::deploy');
  });

  it('redacts input that is not an object as a whole when anything is sensitive', () => {
    assert.equal(redactInput('not json "secret"', ['x']), JSON.stringify(REDACTED_VALUE));
    assert.equal(redactInput('{"a":1}', []), '{"a":1}');
  });
});
