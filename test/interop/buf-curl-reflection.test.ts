import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../lib/package-root';
import { useDevStack } from '../helpers/dev-stack';

/**
 * Every service answers `buf curl` with server reflection only (no proto file
 * given, run from an empty directory), including methods whose messages import well-known types
 * (Timestamp in Run, Struct in NodeResult.value, Value in Parameter.default_value), which the
 * stock @grpc/reflection could not serve (docs/toolchain.md "Server reflection", grpc/grpc-node#3034).
 */

/** Most time one buf curl may take, in ms. */
const BUF_CURL_TIMEOUT_MS = 60_000;

const buf = join(packageRoot(), 'node_modules', '.bin', 'buf');

/** Splits buf curl's output (one pretty-printed JSON document per message) into values. */
function jsonDocuments(text: string): unknown[] {
  const docs: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') {
      if (depth++ === 0) start = i;
    } else if (c === '}' && --depth === 0) docs.push(JSON.parse(text.slice(start, i + 1)));
  }
  return docs;
}

describe('buf curl with server reflection only', () => {
  const dev = useDevStack({ agents: 1 });
  let emptyDir: string;
  before(() => {
    // No buf.yaml or proto file within reach: the schema can only come from reflection.
    emptyDir = mkdtempSync(join(tmpdir(), 'baton-buf-curl-'));
  });
  after(() => rmSync(emptyDir, { recursive: true, force: true }));

  /** Runs `buf curl` over plain-text gRPC; resolves with the JSON documents printed, rejects with buf's message. */
  function curl(address: string, path: string, data?: unknown): Promise<unknown[]> {
    const args = ['curl', '--protocol', 'grpc', '--http2-prior-knowledge'];
    if (data !== undefined) args.push('-d', JSON.stringify(data));
    args.push(`http://${address}${path}`);
    return new Promise((resolve, reject) => {
      execFile(buf, args, { cwd: emptyDir, timeout: BUF_CURL_TIMEOUT_MS }, (err, stdout, stderr) => {
        if (err) reject(new Error(`buf ${args.join(' ')}: ${stderr.trim() || stdout.trim() || err.message}`));
        else resolve(jsonDocuments(stdout));
      });
    });
  }
  const one = async (address: string, path: string, data: unknown) => (await curl(address, path, data))[0] as Record<string, unknown>;

  it('lists on each server exactly the services it serves, health and reflection included', async () => {
    const a = dev.stack.addresses;
    const expected: Array<[string, string[]]> = [
      [a.metadata, ['baton.v1.MetadataService']],
      [a.results, ['baton.v1.ResultsService']],
      [a.scheduler, ['baton.v1.AgentGatewayService', 'baton.v1.SchedulerService']],
    ];
    // In parallel: each buf curl is a process, and the machine may be busy.
    await Promise.all(
      expected.map(async ([address, services]) => {
        const out = await new Promise<string>((resolve, reject) =>
          execFile(
            buf,
            ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', '--list-services', `http://${address}`],
            { cwd: emptyDir, timeout: BUF_CURL_TIMEOUT_MS },
            (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout)),
          ),
        );
        assert.deepEqual(out.trim().split('\n').sort(), [...services, 'grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection'].sort());
      }),
    );
  });

  it('lists the methods of every server, resolving each listed service (health and reflection included) from reflection alone', async () => {
    const a = dev.stack.addresses;
    const servers: Array<[string, string[]]> = [
      [a.metadata, ['baton.v1.MetadataService/GetTask', 'baton.v1.MetadataService/ListTasks']],
      [a.results, ['baton.v1.ResultsService/GetRunStatus', 'baton.v1.ResultsService/RecordNodeResults']],
      [a.scheduler, ['baton.v1.SchedulerService/RunTask', 'baton.v1.AgentGatewayService/Connect']],
    ];
    await Promise.all(
      servers.map(async ([address, some]) => {
        const out = await new Promise<string>((resolve, reject) =>
          execFile(
            buf,
            ['curl', '--protocol', 'grpc', '--http2-prior-knowledge', '--list-methods', `http://${address}`],
            { cwd: emptyDir, timeout: BUF_CURL_TIMEOUT_MS },
            (err, stdout, stderr) => (err ? reject(new Error(`buf curl --list-methods ${address}: ${stderr}`)) : resolve(stdout)),
          ),
        );
        const methods = out.trim().split('\n');
        for (const m of [...some, 'grpc.health.v1.Health/Check', 'grpc.health.v1.Health/Watch', 'grpc.reflection.v1.ServerReflection/ServerReflectionInfo']) {
          assert.ok(methods.includes(m), `${address} lists ${m}; got ${methods.join(', ')}`);
        }
      }),
    );
  });

  it('checks health on every service, overall and by name', async () => {
    const a = dev.stack.addresses;
    const checks = [
      [a.metadata, 'baton.v1.MetadataService'],
      [a.results, 'baton.v1.ResultsService'],
      [a.scheduler, 'baton.v1.SchedulerService'],
    ].flatMap(([address, service]) => [one(address, '/grpc.health.v1.Health/Check', {}), one(address, '/grpc.health.v1.Health/Check', { service })]);
    for (const answer of await Promise.all(checks)) assert.deepEqual(answer, { status: 'SERVING' });
  });

  it('calls the metadata service: ListTasks and GetTask (google.protobuf.Value defaults)', async () => {
    const [listed, got] = (await Promise.all([
      one(dev.stack.addresses.metadata, '/baton.v1.MetadataService/ListTasks', {}),
      one(dev.stack.addresses.metadata, '/baton.v1.MetadataService/GetTask', { task: 'demo::echo' }),
    ])) as [{ tasks: Array<{ name: string }> }, { task: { name: string; parameters: Array<{ name: string }> } }];
    assert.ok(
      listed.tasks.some((t) => t.name === 'demo::echo'),
      JSON.stringify(listed),
    );
    assert.equal(got.task.name, 'demo::echo');
    assert.ok(got.task.parameters.some((p) => p.name === 'message'));
  });

  it('calls the scheduler and the results service with Timestamp and Struct in their messages', async () => {
    const node = dev.stack.agentNames[0];
    const discovered = (await one(dev.stack.addresses.scheduler, '/baton.v1.SchedulerService/DiscoverNodes', { filter: { identities: [node] } })) as {
      nodes: Array<{ identity: string; lastSeen: string; facts: Record<string, unknown> }>;
    };
    assert.equal(discovered.nodes[0].identity, node);
    assert.match(discovered.nodes[0].lastSeen, /^\d{4}-\d\d-\d\dT/); // a Timestamp, rendered by buf from the reflected schema
    assert.equal(typeof discovered.nodes[0].facts, 'object'); // a Struct

    const ran = (await one(dev.stack.addresses.scheduler, '/baton.v1.SchedulerService/RunTask', {
      task: 'demo::echo',
      inputJson: JSON.stringify({ message: 'from buf curl' }),
      filter: { identities: [node] },
    })) as { taskId: string; results: Array<{ host: string; value: { message: string } }> };
    assert.match(ran.taskId, /^[0-9a-f]{32}$/);
    assert.deepEqual(
      ran.results.map((r) => [r.host, r.value.message]),
      [[node, 'from buf curl']],
    );

    const runs = (await one(dev.stack.addresses.results, '/baton.v1.ResultsService/ListRuns', {})) as { runs: Array<{ taskId: string; createTime: string }> };
    const listed = runs.runs.find((r) => r.taskId === ran.taskId);
    assert.ok(listed, JSON.stringify(runs));
    assert.match(listed.createTime, /^\d{4}-\d\d-\d\dT/);

    const status = (await one(dev.stack.addresses.results, '/baton.v1.ResultsService/GetRunStatus', { taskId: ran.taskId })) as {
      summary: { success: boolean };
    };
    assert.equal(status.summary.success, true);

    // A server stream: one JSON document per event, the first being the run's creation.
    const events = (await curl(dev.stack.addresses.results, '/baton.v1.ResultsService/WatchRunEvents', { taskId: ran.taskId })) as Array<{
      event: { runStateChanged?: { state: string } };
    }>;
    assert.equal(events[0].event.runStateChanged?.state, 'RUN_STATE_PENDING');
    assert.equal(events.at(-1)?.event.runStateChanged?.state, 'RUN_STATE_SUCCEEDED');
  });

  it('reports a gRPC error status with its code', async () => {
    await assert.rejects(curl(dev.stack.addresses.results, '/baton.v1.ResultsService/GetRunStatus', { taskId: 'not-a-task-id' }), /invalid_argument/);
  });
});
