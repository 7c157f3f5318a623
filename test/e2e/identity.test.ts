import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, status, type Client, type ServiceError } from '@grpc/grpc-js';
import { Hello } from '../../gen/baton/v1/agent_gateway_service';
import { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { NodeResult, NodeState, Run } from '../../gen/baton/v1/run';
import { RunTaskRequest, SchedulerServiceClient } from '../../gen/baton/v1/scheduler_service';
import { startChild, type StartedChild } from '../../lib/child-process';
import { readServiceError } from '../../lib/errors';
import { makeClient, unary } from '../../lib/grpc-client';
import { createLogger } from '../../lib/logger';
import { LISTENING_LINE } from '../../lib/main';
import { packageRoot } from '../../lib/package-root';
import { createCa, issueCertificate, type CertRole } from '../../lib/pki';
import { newTaskId } from '../../lib/task-id';
import type { TlsFiles } from '../../lib/tls';
import { startScheduler, type RunningScheduler } from '../../services/scheduler/scheduler-server';
import { TestAgent } from '../helpers/test-agent';
import { uniquePrefix, useRedisServer } from '../helpers/redis';
import { issueSubjectCertificate } from '../helpers/subject-certificate';
import { waitFor } from '../helpers/wait';

/**
 * Who is calling, with mutual TLS everywhere: real baton-metadata and
 * baton-results processes and an in-process scheduler, all with certificates from one CA
 * (lib/pki.ts), a real redis-server, and test agents speaking the agent protocol over TLS.
 * Each refusal is checked to leave Redis untouched.
 */

const redis = useRedisServer();
const log = createLogger('scheduler', 'silent');
const resultsPrefix = uniquePrefix();
const schedulerPrefix = uniquePrefix();
const pki = mkdtempSync(join(tmpdir(), 'baton-identity-'));
const children: StartedChild[] = [];
const clients: Client[] = [];
const agents: TestAgent[] = [];
let scheduler: RunningScheduler;
let resultsAddress = '';

/** One task, `acme::restart`, that takes no parameters. */
function writeFixtureModules(): string {
  const root = mkdtempSync(join(tmpdir(), 'baton-identity-modules-'));
  const tasks = join(root, 'production', 'modules', 'acme', 'tasks');
  mkdirSync(tasks, { recursive: true });
  writeFileSync(join(tasks, 'restart.sh'), '#!/bin/sh\necho "{}"\n', { mode: 0o755 });
  writeFileSync(join(tasks, 'restart.json'), JSON.stringify({ description: 'Restarts', parameters: {} }));
  return root;
}

function tlsOf(role: CertRole, name: string): TlsFiles {
  const files = issueCertificate(pki, role, name, { days: 2 });
  return { ca: files.ca, cert: files.cert, key: files.key };
}

async function startService(piece: 'metadata' | 'results', args: string[]): Promise<string> {
  const tls = tlsOf('service', piece);
  const main = join(packageRoot(), 'dist', 'services', piece, 'main.js');
  const flags = ['--listen', '127.0.0.1:0', '--log-level', 'warn', '--tls-ca', tls.ca!, '--tls-cert', tls.cert!, '--tls-key', tls.key!];
  const child = await startChild(process.execPath, [main, ...flags, ...args], { ready: LISTENING_LINE });
  children.push(child);
  return LISTENING_LINE.exec(child.readyLine)![1];
}

function schedulerAs(tls: TlsFiles): SchedulerServiceClient {
  const c = makeClient(SchedulerServiceClient, scheduler.address, tls);
  clients.push(c);
  return c;
}

function resultsAs(tls: TlsFiles): ResultsServiceClient {
  const c = makeClient(ResultsServiceClient, resultsAddress, tls);
  clients.push(c);
  return c;
}

async function refused(p: Promise<unknown>): Promise<ServiceError> {
  return p.then(
    () => assert.fail('expected the call to be refused'),
    (err: ServiceError) => err,
  );
}

/** Every Redis key of both services (runs, results, request ids, the node index). */
async function storedKeys(): Promise<string[]> {
  const keys = [...(await redis.client().keys(`${resultsPrefix}:*`)), ...(await redis.client().keys(`${schedulerPrefix}:*`))];
  return keys.sort();
}

const RUN = RunTaskRequest.fromPartial({ task: 'acme::restart', inputJson: '{}', background: true, filter: { identities: ['node1'] } });

before(async () => {
  createCa(pki, { days: 2 });
  const metadataAddress = await startService('metadata', ['--environmentpath', writeFixtureModules()]);
  resultsAddress = await startService('results', ['--redis-url', redis.url, '--key-prefix', resultsPrefix]);
  scheduler = await startScheduler({
    listen: '127.0.0.1:0',
    log,
    tls: tlsOf('service', 'scheduler'),
    redisUrl: redis.url,
    keyPrefix: schedulerPrefix,
    metadataAddress,
    resultsAddress,
    heartbeatIntervalS: 10,
    downloadTimeoutS: 20,
    drainGraceMs: 1_000,
  });
});

after(async () => {
  for (const a of agents) a.close();
  for (const c of clients) c.close();
  await scheduler.stop();
  await Promise.all(children.map((c) => c.stop()));
});

describe('roles with mutual TLS', () => {
  it('refuses RunTask from an agent certificate with PERMISSION_DENIED, and no run is stored', async () => {
    const before = await storedKeys();
    const client = schedulerAs(tlsOf('agent', 'node9'));
    const err = await refused(unary(client, client.runTask, RUN));
    assert.equal(err.code, status.PERMISSION_DENIED);
    assert.equal(err.details, "certificate 'node9' is an agent certificate; baton.v1.SchedulerService/RunTask needs an operator or service certificate");
    assert.deepEqual(await storedKeys(), before);
  });

  it('refuses a certificate without a Baton role as UNAUTHENTICATED', async () => {
    const plain = issueSubjectCertificate(pki, 'plain-mallory', '/CN=mallory');
    const client = schedulerAs({ ca: join(pki, 'ca.pem'), ...plain });
    const err = await refused(unary(client, client.runTask, RUN));
    assert.equal(err.code, status.UNAUTHENTICATED);
    assert.match(err.details, /^certificate 'mallory' carries no Baton role \(OU=baton-agent, baton-service or baton-operator\)/);
  });

  it('lets only services write results: an operator cannot create a run or record a result; a service can', async () => {
    const before = await storedKeys();
    const taskId = newTaskId();
    const run = Run.fromPartial({ taskId, task: 'acme::restart', environment: 'production', caller: 'cert=alice', nodes: ['node1'], createTime: new Date() });
    const result = NodeResult.fromPartial({ host: 'node1', taskId, state: NodeState.NODE_STATE_SUCCEEDED, completed: true, stdout: '{}' });
    const operator = resultsAs(tlsOf('operator', 'alice'));
    for (const call of [unary(operator, operator.createRun, { run }), unary(operator, operator.recordNodeResults, { taskId, results: [result] })]) {
      const err = await refused(call);
      assert.equal(err.code, status.PERMISSION_DENIED);
      assert.equal(readServiceError(err).reason, 'ROLE_NOT_ALLOWED');
    }
    const agent = resultsAs(tlsOf('agent', 'node1'));
    assert.equal((await refused(unary(agent, agent.recordNodeResults, { taskId, results: [result] }))).code, status.PERMISSION_DENIED);
    assert.deepEqual(await storedKeys(), before);

    const service = resultsAs(tlsOf('service', 'scheduler'));
    const created = await unary(service, service.createRun, { run });
    assert.equal(created.run?.taskId, taskId);
    // Operators read.
    const status_ = await unary(operator, operator.getRunStatus, { taskId });
    assert.equal(status_.run?.caller, 'cert=alice');
  });

  it('refuses a Connect stream from an operator certificate', async () => {
    const agent = new TestAgent(scheduler.address, tlsOf('operator', 'alice'));
    agents.push(agent);
    agent.send({ $case: 'hello', value: Hello.fromPartial({ identity: 'alice' }) });
    const ended = await agent.ended(20_000);
    assert.equal(ended.code, status.PERMISSION_DENIED);
    assert.match(ended.details, /AgentGatewayService\/Connect needs an agent certificate/);
  });
});

describe('agents bound to their certificates', () => {
  it("ends the stream of an agent whose Hello claims another node's identity, and indexes nothing", async () => {
    const before = await storedKeys();
    const agent = new TestAgent(scheduler.address, tlsOf('agent', 'node1'));
    agents.push(agent);
    agent.send({ $case: 'hello', value: Hello.fromPartial({ identity: 'node2', agents: ['bolt_tasks'] }) });
    const ended = await agent.ended(20_000);
    assert.equal(ended.code, status.PERMISSION_DENIED);
    assert.equal(ended.details, "certificate is for 'node1'; Hello claims 'node2'");
    assert.equal(agent.received.length, 0, 'no Welcome');
    assert.deepEqual(await storedKeys(), before);
    const operator = schedulerAs(tlsOf('operator', 'alice'));
    const found = await unary(operator, operator.discoverNodes, { filter: undefined, includeOffline: true });
    assert.ok(!found.nodes.some((n) => n.identity === 'node2'));
  });
});

describe('caller ids from certificates', () => {
  it('records a run as cert=bob when bob claims x-baton-caller=cert=alice, and keeps the node and caller of a result the agent tries to forge', async () => {
    const agent = await TestAgent.connect(scheduler.address, { identity: 'node1', agents: ['bolt_tasks'], version: '0.1.0' }, tlsOf('agent', 'node1'));
    agents.push(agent);
    const bob = schedulerAs(tlsOf('operator', 'bob'));
    const metadata = new Metadata();
    metadata.set('x-baton-caller', 'cert=alice');
    const running = unary(bob, bob.runTask, RUN, { metadata, deadlineMs: 30_000 });
    await agent.acceptDownload();
    const command = await agent.next('run', 20_000);
    const { taskId } = await running;
    assert.equal(command.taskId, taskId);
    assert.equal(command.caller, 'cert=bob');
    // The agent claims to be node2 and alice in its result: stored as node1's, with the run's caller.
    agent.send({
      $case: 'taskFinished',
      value: {
        result: NodeResult.fromPartial({
          host: 'node2',
          taskId,
          callerid: 'cert=alice',
          task: 'evil::task',
          state: NodeState.NODE_STATE_SUCCEEDED,
          completed: true,
          stdout: '{}',
        }),
      },
    });
    await agent.next('resultAck', 20_000);

    const results = resultsAs(tlsOf('operator', 'bob'));
    const got = await waitFor(
      'the run with its result',
      async () => {
        const s = await unary(results, results.getRunStatus, { taskId });
        return s.items.some((i) => i.state === NodeState.NODE_STATE_SUCCEEDED) ? s : undefined;
      },
      20_000,
    );
    assert.equal(got.run?.caller, 'cert=bob');
    assert.deepEqual(
      got.items.map((i) => [i.host, i.callerid, i.task]),
      [['node1', 'cert=bob', 'acme::restart']],
    );
  });
});
