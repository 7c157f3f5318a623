import { after, before, describe, it } from 'node:test';
import { status, type ServiceError } from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListRunsRequest, ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { NodeState, RunState } from '../../gen/baton/v1/run';
import { RunTaskRequest, SchedulerServiceClient } from '../../gen/baton/v1/scheduler_service';
import { startChild, type StartedChild } from '../../lib/child-process';
import { makeClient, unary } from '../../lib/grpc-client';
import { LISTENING_LINE } from '../../lib/main';
import { packageRoot } from '../../lib/package-root';
import { uniquePrefix, useRedisServer } from '../helpers/redis';
import { waitFor } from '../helpers/wait';

/**
 * Scheduler replicas for real: redis-server, the metadata and results services, two scheduler
 * processes on one Redis (replicas A and B), and agent processes connected to one or the other,
 * running the real `runs::sleep` fixture. Each scheduler runs in a process group of its own, so
 * that kill -9 of a replica is the whole of it.
 */

/** The replica lease the schedulers run with, in s: short, so that the test waits little for a death to show. */
const LEASE_S = 4;
/** Generous: several helpers share two cores. */
const SETTLE_MS = 30_000;

const redis = useRedisServer();
const root = packageRoot();
const children: StartedChild[] = [];
let stateDir = '';
let metadataAddress = '';
let resultsAddress = '';
let results: ResultsServiceClient;
const keyPrefix = uniquePrefix();

function lineOf(child: StartedChild): string {
  return LISTENING_LINE.exec(child.readyLine)![1];
}

async function startService(piece: 'metadata' | 'results' | 'scheduler', args: string[], ownGroup = false): Promise<StartedChild> {
  const child = await startChild(
    process.execPath,
    [join(root, 'dist', 'services', piece, 'main.js'), '--insecure', '--listen', '127.0.0.1:0', '--log-level', 'warn', ...args],
    {
      ready: LISTENING_LINE,
      timeoutMs: SETTLE_MS,
      detached: ownGroup,
      onStderr: (line) => process.env.BATON_E2E_LOGS && process.stderr.write(`[${piece}] ${line}\n`),
    },
  );
  children.push(child);
  return child;
}

/** A scheduler replica in a process group of its own. */
async function startReplica(name: string): Promise<{ child: StartedChild; address: string; client: SchedulerServiceClient }> {
  const child = await startService(
    'scheduler',
    [
      '--redis-url',
      redis.url,
      '--key-prefix',
      keyPrefix,
      '--metadata-address',
      metadataAddress,
      '--results-address',
      resultsAddress,
      '--replica-name',
      name,
      '--replica-lease-s',
      String(LEASE_S),
    ],
    true,
  );
  const address = lineOf(child);
  return { child, address, client: makeClient(SchedulerServiceClient, address) };
}

/** A real agent process for `identity`, connected to `scheduler`; `instance` keeps a second process of one node apart on disk. */
async function startAgent(identity: string, scheduler: string, instance = 'a'): Promise<StartedChild> {
  const dir = join(stateDir, `${identity}-${instance}`);
  const child = await startChild(
    process.execPath,
    [
      join(root, 'dist', 'agent', 'main.js'),
      '--insecure',
      '--identity',
      identity,
      '--scheduler-address',
      scheduler,
      '--cache-dir',
      join(dir, 'cache'),
      '--spool-dir',
      join(dir, 'spool'),
      '--log-level',
      'warn',
    ],
    { ready: /connected to/, timeoutMs: SETTLE_MS, onStderr: (line) => process.env.BATON_E2E_LOGS && process.stderr.write(`[${identity}] ${line}\n`) },
  );
  children.push(child);
  return child;
}

/** SIGKILL of a child's whole process group; resolves once the child has exited. */
function killGroup(started: StartedChild): Promise<void> {
  const { child } = started;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    process.kill(-child.pid!, 'SIGKILL');
  });
}

/** Nodes the replica behind `client` reports online, among every node it knows. */
async function onlineNodes(client: SchedulerServiceClient): Promise<string[]> {
  const found = await unary(client, client.discoverNodes, { includeOffline: true });
  return found.nodes
    .filter((n) => n.online)
    .map((n) => n.identity)
    .sort();
}

/** Runs `runs::sleep 0` in the background on `nodes` through `client`; resolves with the final run, every node's state by node. */
async function runOn(client: SchedulerServiceClient, nodes: string[]): Promise<{ state: RunState; nodes: Record<string, NodeState> }> {
  const { taskId } = await unary(
    client,
    client.runTask,
    RunTaskRequest.fromPartial({ task: 'runs::sleep', inputJson: '{"seconds":0}', background: true, filter: { identities: nodes } }),
    { deadlineMs: SETTLE_MS },
  );
  const final = await waitFor(
    `run ${taskId} to end`,
    async () => {
      const status = await unary(results, results.getRunStatus, { taskId });
      const state = status.run?.state;
      return state === RunState.RUN_STATE_SUCCEEDED || state === RunState.RUN_STATE_FAILED || state === RunState.RUN_STATE_CANCELLED ? status : undefined;
    },
    SETTLE_MS,
    100,
  );
  return { state: final.run!.state, nodes: Object.fromEntries(final.items.map((r) => [r.host, r.state])) };
}

describe('scheduler replicas', () => {
  let a: Awaited<ReturnType<typeof startReplica>>;
  let b: Awaited<ReturnType<typeof startReplica>>;

  before(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'baton-replicas-'));
    metadataAddress = lineOf(await startService('metadata', ['--environmentpath', join(root, 'test', 'fixtures', 'modules')]));
    resultsAddress = lineOf(await startService('results', ['--redis-url', redis.url, '--key-prefix', keyPrefix]));
    results = makeClient(ResultsServiceClient, resultsAddress);
    [a, b] = await Promise.all([startReplica('a'), startReplica('b')]);
    await Promise.all([startAgent('ra1', a.address), startAgent('ra2', a.address), startAgent('rb1', b.address), startAgent('rb2', b.address)]);
  });

  after(async () => {
    a?.client.close();
    b?.client.close();
    results?.close();
    await Promise.all(children.map((c) => killGroupOrStop(c)));
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  /** Schedulers (own groups) are killed whole; the rest stopped politely. */
  const killGroupOrStop = (c: StartedChild): Promise<void> => (c === a?.child || c === b?.child ? killGroup(c) : c.stop());

  it('runs a task on agents spread over two replicas through either replica', async () => {
    const every = ['ra1', 'ra2', 'rb1', 'rb2'];
    await waitFor(
      'every agent online on both replicas',
      async () => (await onlineNodes(a.client)).join() === every.join() && (await onlineNodes(b.client)).join() === every.join(),
      SETTLE_MS,
    );
    for (const through of [a, b]) {
      const run = await runOn(through.client, every);
      assert.equal(run.state, RunState.RUN_STATE_SUCCEEDED, `run through ${through.address}: ${JSON.stringify(run.nodes)}`);
      assert.deepEqual(run.nodes, Object.fromEntries(every.map((n) => [n, NodeState.NODE_STATE_SUCCEEDED])));
    }
  });

  it('reports the nodes of a replica killed with SIGKILL as not online within one lease, answers its pending download entries from the survivor, and shows a node online there once its agent reconnects', async () => {
    await waitFor('every agent online on B', async () => (await onlineNodes(b.client)).length === 4, SETTLE_MS);
    const killedAt = Date.now();
    await killGroup(a.child);
    // At once, while A's lease still runs: B sends ra2's download through A's stream, where
    // nobody reads it; once the lease ended B takes A's stream over and finds ra2 nowhere.
    const gate = unary(
      b.client,
      b.client.runTask,
      RunTaskRequest.fromPartial({ task: 'runs::sleep', inputJson: '{"seconds":0}', background: true, filter: { identities: ['ra2', 'rb1'] } }),
      { deadlineMs: SETTLE_MS * 2 },
    ).then(
      () => assert.fail('the run passed the download gate with ra2 dead'),
      (err: ServiceError) => ({ err, atMs: Date.now() - killedAt }),
    );
    await waitFor('ra1 and ra2 to be offline on B', async () => (await onlineNodes(b.client)).join() === 'rb1,rb2', SETTLE_MS, 100);
    const goneMs = Date.now() - killedAt;
    // Within one lease period of the death (the lease may have just been renewed), and far
    // before three missed heartbeats (30 s) would have said so; a second of slack for a loaded machine.
    assert.ok(goneMs <= LEASE_S * 1000 + 1_000, `ra1 and ra2 went offline ${goneMs} ms after the kill; the lease is ${LEASE_S} s`);

    const refused = await gate;
    assert.equal(refused.err.code, status.FAILED_PRECONDITION);
    assert.match(refused.err.details, /^could not download the task onto all nodes: ra2: no response$/);
    // Not the download timeout (60 s): the survivor answered for the dead replica's entry once its lease ended.
    assert.ok(refused.atMs < 3 * LEASE_S * 1000 + 5_000, `the gate closed ${refused.atMs} ms after the kill`);
    const [taskId] = (await unary(results, results.listRuns, ListRunsRequest.fromPartial({ pageSize: 1 }))).runs.map((r) => r.taskId);
    const ra2 = (await unary(results, results.getRunStatus, { taskId })).items.find((r) => r.host === 'ra2');
    assert.equal(ra2?.state, NodeState.NODE_STATE_NO_RESPONSE);
    assert.equal(ra2?.statusmsg, 'no response: the node is not connected to any scheduler');

    // The agents know one address; a second agent process of ra1 connects to the survivor.
    await startAgent('ra1', b.address, 'b');
    await waitFor('ra1 online on B', async () => (await onlineNodes(b.client)).join() === 'ra1,rb1,rb2', SETTLE_MS, 100);
    const run = await runOn(b.client, ['ra1', 'rb1', 'rb2']);
    assert.equal(run.state, RunState.RUN_STATE_SUCCEEDED, JSON.stringify(run.nodes));
  });
});
