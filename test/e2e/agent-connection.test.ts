import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../agent/agent';
import { resolveAgentOptions, type AgentConfig } from '../../agent/agent-options';
import { SchedulerServiceClient } from '../../gen/baton/v1/scheduler_service';
import { freePort } from '../../lib/free-port';
import { makeClient, unary } from '../../lib/grpc-client';
import { createLogger } from '../../lib/logger';
import { startScheduler, type RunningScheduler } from '../../services/scheduler/scheduler-server';
import { uniquePrefix, useRedisServer } from '../helpers/redis';
import { waitFor } from '../helpers/wait';

/**
 * Facts and liveness against a real scheduler (in-process, real Redis): the agent's facts and
 * classes files are re-read and pushed, and a scheduler that goes silent — the TCP connection
 * stays open but nothing comes through, as with a frozen process or a dropped route — is noticed
 * within scheduler-timeout-s and a new connection made. The silence is made by a TCP relay
 * between agent and scheduler that stops forwarding the connections it holds.
 */

const redis = useRedisServer();
const log = createLogger('agent-test', 'silent');

/** A TCP relay to `target` whose current connections can be frozen (bytes no longer forwarded). */
async function relay(target: number): Promise<{ port: number; freeze(): void; close(): Promise<void> }> {
  const pairs: Array<[Socket, Socket]> = [];
  const all: Socket[] = [];
  const server = createServer((down) => {
    const up = connect(target, '127.0.0.1');
    down.pipe(up).pipe(down);
    const quiet = () => undefined;
    down.on('error', quiet);
    up.on('error', quiet);
    pairs.push([down, up]);
    all.push(down, up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of all) s.destroy();
        server.close(() => resolve());
      }),
    freeze: () => {
      for (const [down, up] of pairs.splice(0)) {
        down.unpipe(up);
        up.unpipe(down);
        down.pause();
        up.pause();
      }
    },
  };
}

describe('agent connection and facts against a real scheduler', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('pushes changed facts and classes files, and reconnects within scheduler-timeout-s when the scheduler goes silent', async () => {
    const scheduler: RunningScheduler = await startScheduler({
      listen: '127.0.0.1:0',
      log,
      redisUrl: redis.url,
      keyPrefix: uniquePrefix(),
      metadataAddress: `127.0.0.1:${await freePort()}`,
      resultsAddress: `127.0.0.1:${await freePort()}`,
      agentMetadataAddress: '127.0.0.1:1',
      heartbeatIntervalS: 1,
      drainGraceMs: 500,
    });
    cleanups.push(() => scheduler.stop());
    const schedulerPort = Number(scheduler.address.split(':').pop());
    const tcp = await relay(schedulerPort);
    cleanups.push(() => tcp.close());
    const client = makeClient(SchedulerServiceClient, scheduler.address);
    cleanups.push(() => client.close());

    const dir = mkdtempSync(join(tmpdir(), 'baton-agent-conn-'));
    mkdirSync(join(dir, 'spool'));
    mkdirSync(join(dir, 'cache'));
    const factsFile = join(dir, 'facts.yaml');
    const classesFile = join(dir, 'classes.txt');
    writeFileSync(factsFile, 'role: web\n');
    writeFileSync(classesFile, 'role::web\nntp\n');
    const config: AgentConfig = {
      identity: 'conn1',
      'scheduler-address': `127.0.0.1:${tcp.port}`,
      insecure: true,
      'cache-dir': join(dir, 'cache'),
      'spool-dir': join(dir, 'spool'),
      'facts-file': factsFile,
      'classes-file': classesFile,
      classes: 'base',
      'facts-poll-interval-s': 1,
      'scheduler-timeout-s': 2,
      'heartbeat-interval-s': 1,
      'max-concurrent-tasks': 4,
      'max-output-bytes': 1024 * 1024,
      'retention-s': 3600,
      'retention-sweep-interval-s': 3600,
      'log-level': 'silent',
    };
    const connected: number[] = [];
    const agent = new Agent(resolveAgentOptions(config), { log, announce: () => connected.push(Date.now()) });
    cleanups.push(() => agent.stop());
    await agent.start();
    await waitFor('the agent to connect', () => connected.length === 1);

    const node = async () => (await unary(client, client.discoverNodes, { filter: undefined, includeOffline: true })).nodes.find((n) => n.identity === 'conn1');
    const first = await waitFor('the node in the index', node);
    assert.equal((first.facts as { role?: string }).role, 'web');
    assert.deepEqual(first.classes, ['base', 'role::web', 'ntp']);
    assert.equal(typeof (first.facts as { fqdn?: string }).fqdn, 'string');

    // Heartbeats answered: the session outlives its 2 s silence limit.
    await new Promise((r) => setTimeout(r, 3_000));
    assert.equal(connected.length, 1, 'no reconnect while the scheduler answers');

    writeFileSync(factsFile, 'role: db\n');
    writeFileSync(classesFile, 'role::db\n');
    const updated = await waitFor(
      'the new facts in the index',
      async () => {
        const n = await node();
        return (n?.facts as { role?: string } | undefined)?.role === 'db' ? n : undefined;
      },
      5_000,
    );
    assert.deepEqual(updated.classes, ['base', 'role::db']);

    const frozenAt = Date.now();
    tcp.freeze();
    await waitFor('a new connection after the silence', () => connected.length === 2, 10_000);
    const noticedMs = connected[1] - frozenAt;
    assert.ok(noticedMs < 2_000 + 1_000 + 5_000, `reconnected ${noticedMs} ms after the scheduler went silent`);
    // Silence counts from the last heartbeat answer, at most one interval (1 s) before the freeze.
    assert.ok(noticedMs >= 1_000, 'not before the timeout');
  });
});
