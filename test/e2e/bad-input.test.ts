import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type Client, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { ConnectRequest, ConnectResponse, Hello } from '../../gen/baton/v1/agent_gateway_service';
import { GetTaskRequest, ListTasksRequest, MetadataServiceClient, ReadTaskFileRequest } from '../../gen/baton/v1/metadata_service';
import { GetRunStatusRequest, ListRunsRequest, ResultsServiceClient, WatchRunEventsRequest } from '../../gen/baton/v1/results_service';
import { CancelRunRequest, DiscoverNodesRequest, RunTaskRequest, SchedulerServiceClient, WatchRunRequest } from '../../gen/baton/v1/scheduler_service';
import { Filter } from '../../gen/baton/v1/filter';
import { devAgentProfile } from '../../cli/dev-stack';
import { readServiceError } from '../../lib/errors';
import { makeClient, unary } from '../../lib/grpc-client';
import { SERVER_MAX_RECEIVE_MESSAGE_BYTES } from '../../lib/grpc-server';
import { packageRoot } from '../../lib/package-root';
import { MAX_NODE_FACT_VALUES } from '../../services/scheduler/agent-stream-limits';
import { createCa, issueCertificate } from '../../lib/pki';
import type { TlsFiles } from '../../lib/tls';
import { agentVersion } from '../../agent/agent-version';
import { AGENT_CAPABILITIES } from '../../agent/agent-options';
import { runCli, type CliRun } from '../helpers/cli';
import { useDevStack } from '../helpers/dev-stack';
import { rawCall, streamOutcome } from '../helpers/raw-call';
import type { StackTls } from '../../cli/dev-stack';
import { diffSnapshots, heartbeatVolatile, INDEX_CHUNK, snapshotStore, type StoreSnapshot, type VolatileRule } from '../helpers/store-snapshot';
import { waitFor } from '../helpers/wait';

/**
 * The bad-input suite: every kind of bad input a caller, an operator or an
 * agent can send, against a whole stack running with mutual TLS. Each gets one clear line
 * naming what was wrong and what was expected, and a snapshot of everything stored (every
 * Redis key and value, every file in the agents' spool and cache) is the same before and after.
 */

/** Key prefix of the stack's Redis keys (the services' default `key-prefix`). */
const P = 'baton';

/**
 * What changes by itself on a quiet stack, and only that: a node's `last_seen` (its hash and
 * the scores of `<p>:nodes` and `<p>:online`) moves with every heartbeat. A node's `session`
 * changes when its agent reconnects, which the agent-stream cases below cause on purpose (their
 * raw client connects as node1, displacing the real node1 agent, which then reconnects).
 */
const VOLATILE: VolatileRule[] = heartbeatVolatile(P);

/** A 32-hex task id no run has. */
const NO_SUCH_RUN = '0123456789abcdef0123456789abcdef';

/** An environmentpath with the demo module and `limits::flood`, which prints 50 MiB on stdout and 3 MiB on stderr. */
function fixtureEnvironmentpath(): string {
  const root = mkdtempSync(join(tmpdir(), 'baton-bad-input-'));
  const modules = join(root, 'production', 'modules');
  cpSync(join(packageRoot(), 'examples', 'modules', 'production', 'modules', 'demo'), join(modules, 'demo'), { recursive: true });
  mkdirSync(join(modules, 'limits', 'tasks'), { recursive: true });
  writeFileSync(join(modules, 'limits', 'tasks', 'flood.json'), JSON.stringify({ description: 'Prints 50 MiB', parameters: {} }));
  writeFileSync(
    join(modules, 'limits', 'tasks', 'flood.sh'),
    '#!/bin/sh\nhead -c 52428800 /dev/zero | tr "\\0" o\nhead -c 3145728 /dev/zero | tr "\\0" e >&2\n',
  );
  chmodSync(join(modules, 'limits', 'tasks', 'flood.sh'), 0o755);
  return root;
}

function show(r: CliRun): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** A CLI error: non-zero exit, exactly one line on stderr matching `expected`, no stack trace. */
function assertOneLineError(r: CliRun, expected: RegExp, exitCode?: number): void {
  assert.notEqual(r.code, 0, show(r));
  if (exitCode !== undefined) assert.equal(r.code, exitCode, show(r));
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  assert.equal(lines.length, 1, `one line on stderr\n${show(r)}`);
  assert.match(lines[0], expected, show(r));
  assert.doesNotMatch(r.stderr, /\n\s+at |Error: .*\n.*node:internal|\bat .*\.js:\d+/, 'no stack trace');
}

/** A gRPC error: the code, and a one-line message matching `expected`. */
function assertGrpcError(err: unknown, code: status, expected: RegExp): void {
  const e = err as ServiceError;
  assert.equal(typeof e?.code, 'number', `expected a gRPC error, got ${String(err)}`);
  const report = readServiceError(e);
  assert.equal(report.code, code, `${status[report.code]}: ${report.message}`);
  assert.doesNotMatch(report.message, /\n/, 'one line');
  assert.match(report.message, expected);
}

async function rejected(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (v) => assert.fail(`expected the call to fail, got ${JSON.stringify(v)?.slice(0, 200)}`),
    (err: unknown) => err,
  );
}

/** Sends `messages` on a Connect stream left open, and returns how the scheduler ended it and what it sent before. */
async function streamEnding(
  address: string,
  tls: TlsFiles,
  messages: Array<ConnectRequest['message']>,
): Promise<{ ended: StatusObject; received: ConnectResponse[] }> {
  const encoded = messages.map((message) => ConnectRequest.encode({ traceContext: {}, message }).finish());
  const { status: ended, responses } = await rawCall(address, tls, '/baton.v1.AgentGatewayService/Connect', 'bidi-open', encoded, 30_000);
  return { ended, received: responses.map((r) => ConnectResponse.decode(r)) };
}

/** grpc.health.v1 Check with an empty service name: 'SERVING' when the answer is status 1. */
async function healthOf(address: string, tls: TlsFiles): Promise<string> {
  const { status: answer, responses } = await rawCall(address, tls, '/grpc.health.v1.Health/Check', 'unary', new Uint8Array(0));
  assert.equal(answer.code, status.OK, answer.details);
  return responses[0]?.equals(Buffer.from([0x08, 0x01])) ? 'SERVING' : `status bytes ${responses[0]?.toString('hex')}`;
}

function helloOf(identity: string, extra: Partial<Hello> = {}): ConnectRequest['message'] {
  const profile = devAgentProfile(Number(identity.replace('node', '')) || 1);
  return {
    $case: 'hello',
    value: Hello.fromPartial({ identity, facts: profile.facts, classes: profile.classes, agents: [...AGENT_CAPABILITIES], version: agentVersion(), ...extra }),
  };
}

describe('bad input against a stack with mutual TLS', () => {
  const stderrLines: Array<{ name: string; line: string }> = [];
  const fleet = useDevStack({
    agents: 2,
    tls: true,
    logLevel: 'warn',
    environmentpath: fixtureEnvironmentpath(),
    onStderr: (name, line) => stderrLines.push({ name, line }),
  });
  const tls = (): StackTls => {
    const t = fleet.stack.tls;
    assert.ok(t, 'the stack runs with TLS');
    return t;
  };
  const operatorTls = (): TlsFiles => tls().operator('alice');
  const agentTls = (identity: string): TlsFiles => ({
    ca: tls().ca,
    cert: join(tls().dir, `agent-${identity}.pem`),
    key: join(tls().dir, `agent-${identity}.key`),
  });
  // fleet.env points the CLI at the stack with operator alice's certificate.
  const baton = (...args: string[]): Promise<CliRun> => runCli(args, fleet.env);
  const clients: Client[] = [];
  const keep = <C extends Client>(c: C): C => {
    clients.push(c);
    return c;
  };
  const scheduler = () => keep(makeClient(SchedulerServiceClient, fleet.stack.addresses.scheduler, operatorTls()));
  const metadata = () => keep(makeClient(MetadataServiceClient, fleet.stack.addresses.metadata, operatorTls()));
  const results = () => keep(makeClient(ResultsServiceClient, fleet.stack.addresses.results, operatorTls()));

  const snapshot = (extra: VolatileRule[] = []): Promise<StoreSnapshot> =>
    snapshotStore({
      redisUrl: fleet.stack.addresses.redis,
      dirs: fleet.stack.agentNames.map((n) => fleet.stack.agentDir(n)),
      volatile: [...extra, ...VOLATILE],
    });

  /**
   * Runs `action` between two snapshots of the store and expects no difference. A difference
   * that goes away by itself (a displaced agent reconnecting) is waited out, up to 30 s; one
   * that stays fails the test, naming every changed key and file.
   */
  async function expectNothingStored(...args: [() => Promise<void>] | [VolatileRule[], () => Promise<void>]): Promise<void> {
    const [extra, action] = args.length === 1 ? [[], args[0]] : args;
    const before = await snapshot(extra);
    await action();
    let diff: string[] = [];
    try {
      await waitFor(
        'the store to be as before',
        async () => {
          diff = diffSnapshots(before, await snapshot(extra));
          return diff.length === 0;
        },
        30_000,
        200,
      );
    } catch (err) {
      assert.fail(diff.length > 0 ? `the store changed:\n${diff.join('\n')}` : `could not compare the store: ${(err as Error).message}`);
    }
  }

  const runRequest = (over: Partial<RunTaskRequest>): RunTaskRequest =>
    RunTaskRequest.fromPartial({ task: 'demo::echo', environment: 'production', inputJson: '{"message":"hi"}', filter: { identities: ['node1'] }, ...over });

  it('has the whole fleet connected before it starts', async () => {
    const r = await baton('discover', '--json');
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /node1/);
    assert.match(r.stdout, /node2/);
  });

  it('malformed JSON input: one line naming --input and JSON; nothing stored', async () => {
    await expectNothingStored(async () => {
      assertOneLineError(await baton('tasks', 'run', 'demo::echo', '--input', '{"message":', '-I', 'node1'), /input.*JSON|JSON.*input/i, 2);
      const err = await rejected(unary(scheduler(), scheduler().runTask, runRequest({ inputJson: '{"message":' })));
      assertGrpcError(err, status.INVALID_ARGUMENT, /input_json|JSON/);
    });
  });

  it('malformed YAML input through --input @file.yaml: one line naming the file; nothing stored', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-bad-yaml-'));
    const file = join(dir, 'input.yaml');
    writeFileSync(file, 'message: [unclosed\n  count: : 3\n');
    await expectNothingStored(async () => {
      assertOneLineError(await baton('tasks', 'run', 'demo::echo', '--input', `@${file}`, '-I', 'node1'), /input\.yaml|YAML/i, 2);
    });
  });

  it('an unknown task: one line saying it is not found; nothing stored', async () => {
    await expectNothingStored(async () => {
      assertOneLineError(await baton('tasks', 'run', 'demo::nope', '--message', 'x', '-I', 'node1'), /demo::nope.*not found|not found.*demo::nope/, 2);
      assertGrpcError(await rejected(unary(scheduler(), scheduler().runTask, runRequest({ task: 'demo::nope' }))), status.NOT_FOUND, /demo::nope/);
      assertGrpcError(
        await rejected(unary(metadata(), metadata().getTask, GetTaskRequest.fromPartial({ task: 'demo::nope', environment: 'production' }))),
        status.NOT_FOUND,
        /demo::nope/,
      );
    });
  });

  it('wrong parameter types: one line with each invalid parameter in Puppet words; nothing stored', async () => {
    await expectNothingStored(async () => {
      assertOneLineError(
        await baton('tasks', 'run', 'demo::echo', '--input', '{"message": 5, "count": "many"}', '-I', 'node1'),
        /message.*String.*count.*Integer|count.*Integer.*message.*String/,
        2,
      );
      const err = await rejected(unary(scheduler(), scheduler().runTask, runRequest({ inputJson: '{"message": [], "count": 99, "extra": 1}' })));
      assertGrpcError(err, status.INVALID_ARGUMENT, /message/);
      assert.deepEqual(
        readServiceError(err as ServiceError)
          .violations.map((v) => v.field)
          .sort(),
        ['count', 'extra', 'message'],
      );
    });
  });

  it('path traversal in task, module, environment and file names: refused with the expected format; nothing read or stored', async () => {
    await expectNothingStored(async () => {
      assertOneLineError(await baton('tasks', 'run', '../../etc::passwd', '-I', 'node1'), /\.\.\/\.\.\/etc::passwd.*(task name|expected)/, 2);
      assertOneLineError(await baton('tasks', 'show', '../../etc::passwd'), /\.\.\/\.\.\/etc::passwd.*(task name|expected)/, 2);
      assertGrpcError(
        await rejected(unary(metadata(), metadata().getTask, GetTaskRequest.fromPartial({ task: '../../etc::passwd', environment: 'production' }))),
        status.INVALID_ARGUMENT,
        /not a valid task name; expected/,
      );
      assertGrpcError(
        await rejected(unary(metadata(), metadata().getTask, GetTaskRequest.fromPartial({ task: 'demo::../../echo', environment: 'production' }))),
        status.INVALID_ARGUMENT,
        /not a valid task name; expected/,
      );
      assertGrpcError(
        await rejected(unary(metadata(), metadata().getTask, GetTaskRequest.fromPartial({ task: 'demo::echo', environment: '../production' }))),
        status.INVALID_ARGUMENT,
        /environment '\.\.\/production' is not a valid environment name; expected/,
      );
      assertGrpcError(
        await rejected(unary(metadata(), metadata().listTasks, ListTasksRequest.fromPartial({ environment: '../../etc' }))),
        status.INVALID_ARGUMENT,
        /environment/,
      );
      assertGrpcError(
        await rejected(unary(scheduler(), scheduler().runTask, runRequest({ task: '../../etc::passwd' }))),
        status.INVALID_ARGUMENT,
        /is not a task name; expected/,
      );
      assertGrpcError(
        await rejected(unary(scheduler(), scheduler().runTask, runRequest({ environment: '../production' }))),
        status.INVALID_ARGUMENT,
        /is not an environment name; expected/,
      );
      for (const path of ['../etc/passwd', 'demo/tasks/../../../etc/passwd', '/etc/passwd', 'demo/files/..', 'demo/secrets/x']) {
        const read = metadata().readTaskFile(ReadTaskFileRequest.fromPartial({ environment: 'production', path }));
        const err = await streamOutcome(read);
        assert.ok(err, `ReadTaskFile ${path} must fail`);
        assertGrpcError(err, status.INVALID_ARGUMENT, /path '.*' .*; expected a task file path/);
      }
      const badEnv = await streamOutcome(
        metadata().readTaskFile(ReadTaskFileRequest.fromPartial({ environment: '../production', path: 'demo/tasks/echo.sh' })),
      );
      assertGrpcError(badEnv, status.INVALID_ARGUMENT, /environment '\.\.\/production' is not a valid environment name; expected/);
      const badSha = await streamOutcome(
        metadata().readTaskFile(ReadTaskFileRequest.fromPartial({ environment: 'production', path: 'demo/tasks/echo.sh', sha256: '../x' })),
      );
      assertGrpcError(badSha, status.INVALID_ARGUMENT, /sha256 '\.\.\/x' is not 64 lowercase hex characters/);
      assertGrpcError(
        await rejected(unary(results(), results().listRuns, ListRunsRequest.fromPartial({ task: '../../etc::passwd' }))),
        status.INVALID_ARGUMENT,
        /task/,
      );
    });
  });

  it('malformed and forged task ids: one line expecting 32 lowercase hex characters, or not found; nothing stored', async () => {
    await expectNothingStored(async () => {
      for (const id of ['abc', 'a'.repeat(33), '../x', 'ABCDEF0123456789ABCDEF0123456789']) {
        for (const verb of ['status', 'cancel', 'watch']) {
          assertOneLineError(await baton('tasks', verb, id), /32 (lowercase )?hex/, 2);
        }
        assertGrpcError(
          await rejected(unary(results(), results().getRunStatus, GetRunStatusRequest.fromPartial({ taskId: id }))),
          status.INVALID_ARGUMENT,
          /32 lowercase hex/,
        );
        assertGrpcError(
          await rejected(unary(scheduler(), scheduler().cancelRun, CancelRunRequest.fromPartial({ taskId: id }))),
          status.INVALID_ARGUMENT,
          /32 lowercase hex/,
        );
        assertGrpcError(await streamOutcome(scheduler().watchRun(WatchRunRequest.fromPartial({ taskId: id }))), status.INVALID_ARGUMENT, /32 lowercase hex/);
        assertGrpcError(
          await streamOutcome(results().watchRunEvents(WatchRunEventsRequest.fromPartial({ taskId: id }))),
          status.INVALID_ARGUMENT,
          /32 lowercase hex/,
        );
      }
      for (const verb of ['status', 'cancel', 'watch']) {
        assertOneLineError(await baton('tasks', verb, NO_SUCH_RUN), new RegExp(`${NO_SUCH_RUN}.*(not found|no run)|(not found|no run).*${NO_SUCH_RUN}`, 'i'));
      }
      assertGrpcError(
        await rejected(unary(results(), results().getRunStatus, GetRunStatusRequest.fromPartial({ taskId: NO_SUCH_RUN }))),
        status.NOT_FOUND,
        new RegExp(NO_SUCH_RUN),
      );
      assertGrpcError(
        await rejected(unary(scheduler(), scheduler().cancelRun, CancelRunRequest.fromPartial({ taskId: NO_SUCH_RUN }))),
        status.NOT_FOUND,
        new RegExp(NO_SUCH_RUN),
      );
    });
  });

  it('garbage filter expressions: one line naming the column and what was expected; nothing stored', async () => {
    await expectNothingStored(async () => {
      assertOneLineError(await baton('tasks', 'run', 'demo::echo', '--message', 'x', '-S', ')('), /column|expected/, 2);
      assertOneLineError(await baton('discover', '-S', ')('), /column|expected/, 2);
      const nested = `${'('.repeat(300)}role=web${')'.repeat(300)}`;
      assertOneLineError(await baton('discover', '-S', nested), /at most 64 nested/, 2);
      // 1 MB does not fit in one command-line argument (Linux: 128 KiB), so it goes over gRPC.
      const huge = `role=web and ${'x'.repeat(1024 * 1024)}`;
      const filter = Filter.fromPartial({ compound: [huge] });
      assertGrpcError(
        await rejected(unary(scheduler(), scheduler().discoverNodes, DiscoverNodesRequest.fromPartial({ filter }))),
        status.INVALID_ARGUMENT,
        /at most 65536 characters/,
      );
      assertGrpcError(await rejected(unary(scheduler(), scheduler().runTask, runRequest({ filter }))), status.INVALID_ARGUMENT, /at most 65536 characters/);
    });
  });

  it('a client certificate from another CA: refused at the handshake, one line naming the service; nothing stored', async () => {
    const other = mkdtempSync(join(tmpdir(), 'baton-other-ca-'));
    createCa(other);
    const mallory = issueCertificate(other, 'operator', 'mallory');
    await expectNothingStored(async () => {
      // Our CA to check the services, a certificate they did not sign to present.
      const r = await runCli(['tasks', 'run', 'demo::echo', '--message', 'x', '-I', 'node1'], {
        ...fleet.env,
        BATON_TLS_CA: tls().ca,
        BATON_TLS_CERT: mallory.cert,
        BATON_TLS_KEY: mallory.key,
      });
      assertOneLineError(
        r,
        /^baton: the metadata service at 127\.0\.0\.1:\d+ refused our certificate, tls-cert .*mallory.*: it is not signed by the CA the services trust/,
        69,
      );
      // An agent with a certificate of another CA cannot connect either.
      const agentCert = issueCertificate(other, 'agent', 'node1');
      const { ended, received } = await streamEnding(fleet.stack.addresses.scheduler, { ca: tls().ca, cert: agentCert.cert, key: agentCert.key }, [
        helloOf('node1'),
      ]);
      assert.equal(ended.code, status.UNAVAILABLE, ended.details);
      assert.deepEqual(received, []);
    });
  });

  it('an agent claiming another identity: its stream ends naming both names; node2 is untouched', async () => {
    await expectNothingStored(async () => {
      const { ended, received } = await streamEnding(fleet.stack.addresses.scheduler, agentTls('node1'), [helloOf('node2', { facts: { role: 'forged' } })]);
      assert.equal(ended.code, status.PERMISSION_DENIED, ended.details);
      assert.equal(ended.details, "certificate is for 'node1'; Hello claims 'node2'");
      assert.doesNotMatch(ended.details, /\n/);
      assert.ok(!received.some((m) => m.message?.$case === 'welcome'), 'no Welcome');
    });
  });

  it('an agent describing more than the index takes: its Hello refused naming the field and limit; nothing indexed', async () => {
    await expectNothingStored(async () => {
      const many = Object.fromEntries(Array.from({ length: MAX_NODE_FACT_VALUES + 1 }, (_, i) => [`f${i}`, i]));
      const { ended } = await streamEnding(fleet.stack.addresses.scheduler, agentTls('node1'), [helloOf('node1', { facts: many })]);
      assert.equal(ended.code, status.INVALID_ARGUMENT, ended.details);
      assert.equal(ended.details, `Hello.facts has ${MAX_NODE_FACT_VALUES + 1} values; at most ${MAX_NODE_FACT_VALUES} are indexed`);
    });
  });

  it('an oversized stream message: RESOURCE_EXHAUSTED before any handler; nothing stored', async () => {
    await expectNothingStored(async () => {
      const oversized = helloOf('node1', { facts: { blob: 'x'.repeat(SERVER_MAX_RECEIVE_MESSAGE_BYTES + 1024) } });
      const { ended, received } = await streamEnding(fleet.stack.addresses.scheduler, agentTls('node1'), [oversized]);
      assert.equal(ended.code, status.RESOURCE_EXHAUSTED, ended.details);
      assert.match(ended.details, /larger than max/);
      assert.ok(!received.some((m) => m.message?.$case === 'welcome'), 'no Welcome');
    });
  });

  it('a flooding agent stream: ended with RESOURCE_EXHAUSTED and one warn line; the real agent comes back and nothing else changed', async () => {
    const warnsBefore = stderrLines.filter((l) => l.name === 'scheduler' && l.line.includes('over its message rate')).length;
    // The node1 agent starts again, and its Hello carries the facts it reads from the
    // machine at that moment (agent/facts.ts builtinFacts): uptime_seconds and
    // memory.system.available_bytes are new, and with them node1's `facts` and `index` (the index
    // keys it is in) fields and those facts' index keys.
    const machineFacts = ['uptime_seconds', 'memory.system.available_bytes'].map((f) => f.replace(/\./g, '\\.')).join('|');
    const reconnect: VolatileRule[] = [
      { key: new RegExp(`^${P}:${INDEX_CHUNK}node:node1$`), hashFields: ['last_seen', 'session', 'facts', 'index'] },
      // Every index key of those two facts in node1's chunk: fact:["<path>",<value>],
      // factnum:<path>, bits:fact:[...].
      { key: new RegExp(`^${P}:${INDEX_CHUNK}(bits:)?[a-z]+:(\\[")?(${machineFacts})("|$)`), whole: true },
      // Values of node1 alone (those two among them) are records in the chunk's buckets of rare values.
      { key: new RegExp(`^${P}:${INDEX_CHUNK}rare:\\d+$`), whole: true },
    ];
    await expectNothingStored(reconnect, async () => {
      // The real node1 agent steps aside, or it would reconnect and displace the flood's stream.
      await fleet.stack.stopAgent('node1');
      const heartbeats = Array.from({ length: 3000 }, (): ConnectRequest['message'] => ({
        $case: 'heartbeat',
        value: { sendTime: new Date(), runningTasks: 0, intervalS: 0 },
      }));
      const { ended } = await streamEnding(fleet.stack.addresses.scheduler, agentTls('node1'), [helloOf('node1'), ...heartbeats]);
      assert.equal(ended.code, status.RESOURCE_EXHAUSTED, ended.details);
      assert.match(ended.details, /^the agent sent more than \d+ messages at once or more than \d+ per second; stream ended, reconnect$/);
      await fleet.stack.startAgent(1);
    });
    await waitFor(
      'the warn line',
      () => stderrLines.filter((l) => l.name === 'scheduler' && l.line.includes('over its message rate')).length === warnsBefore + 1,
      20_000,
    );
  });

  it('a task printing 50 MiB: each stream capped in the result as stored and as sent, the cut marked, the spool keeping all of it', async () => {
    const r = await baton('tasks', 'run', 'limits::flood', '-I', 'node1', '-I', 'node2', '--json');
    assert.equal(r.code, 0, show(r).slice(0, 2000));
    const taskId = /[0-9a-f]{32}/.exec(r.stdout)?.[0];
    assert.ok(taskId, r.stdout.slice(0, 500));
    const status_ = await unary(results(), results().getRunStatus, GetRunStatusRequest.fromPartial({ taskId }));
    assert.equal(status_.items.length, 2);
    for (const item of status_.items) {
      assert.equal(item.completed, true);
      assert.match(item.stdout, /^o{1048576}\n\[baton-agent: stdout truncated after 1048576 bytes; all of it is in .+\]\n$/);
      assert.match(item.stderr, /^e{1048576}\n\[baton-agent: stderr truncated after 1048576 bytes/);
    }
    // Several nodes' capped results together are more than grpc-js's default 4 MiB message
    // (`baton tasks run --json` failed with "Received message larger than max (6292804 vs 4194304)").
    const statusCli = await baton('tasks', 'status', taskId, '--json');
    assert.equal(statusCli.code, 0, show(statusCli).slice(0, 2000));
    for (const node of ['node1', 'node2']) {
      const spool = join(fleet.stack.agentDir(node), 'spool', taskId);
      assert.equal(statSync(join(spool, 'stdout')).size, 50 * 1024 * 1024, `${node} spool keeps all of stdout`);
      assert.equal(statSync(join(spool, 'stderr')).size, 3 * 1024 * 1024, `${node} spool keeps all of stderr`);
    }
  });

  it('leaves every service running and answering health, with no stack trace in any log', async () => {
    for (const name of ['metadata', 'results', 'scheduler'] as const) {
      assert.equal(await healthOf(fleet.stack.addresses[name], operatorTls()), 'SERVING', name);
    }
    const traces = stderrLines.filter((l) => /^\s+at .+:\d+:\d+\)?$/.test(l.line));
    assert.deepEqual(traces, []);
    for (const c of clients) c.close();
  });
});
