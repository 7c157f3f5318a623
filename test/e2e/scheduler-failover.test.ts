import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Redis from 'ioredis';
import pino from 'pino';
import { AgentConnection } from '../../agent/connection';
import type { Logger } from '../../lib/logger';
import { NodeState, RunState } from '../../gen/baton/v1/run';
import { RunTaskRequest, SchedulerServiceClient } from '../../gen/baton/v1/scheduler_service';
import { startChild, type StartedChild } from '../../lib/child-process';
import { makeClient, unary } from '../../lib/grpc-client';
import { packageRoot } from '../../lib/package-root';
import { freePort } from '../../lib/free-port';
import { HELLO_MAX_RETRY_DELAY_MS } from '../../services/scheduler/hello-admission';
import { useDevStack } from '../helpers/dev-stack';
import { waitFor } from '../helpers/wait';

/** A process this file started in its own process group. */
interface GroupChild {
  started: StartedChild;
  /** SIGKILL to the whole group (the process and anything it started), as a machine loss would. */
  killGroup(): void;
}

/**
 * An agent's connection alone (no tasks, no facts), heartbeating every 30 s, noting in `on` the
 * scheduler address each Welcome came from; started by the caller.
 */
function bareAgent(identity: string, addresses: string[], log: Logger, on: Map<string, string>): AgentConnection {
  const connection: AgentConnection = new AgentConnection({
    addresses,
    tls: {},
    identity,
    log,
    heartbeatIntervalS: 30,
    hello: () => Promise.resolve({ identity, facts: {}, classes: [], agents: ['bolt_tasks'], version: 'test', unacknowledgedResults: [] }),
    runningTasks: () => 0,
    onWelcome: () => on.set(identity, connection.address),
    onCommand: () => undefined,
    announce: () => undefined,
  });
  return connection;
}

function inGroup(started: StartedChild): GroupChild {
  return {
    started,
    killGroup: () => {
      const { child } = started;
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    },
  };
}

describe('agents and scheduler replicas', () => {
  // Redis, metadata and results from the stack; the schedulers under test are started here, each in its own group.
  const fleet = useDevStack({ agents: 0, environmentpath: join(packageRoot(), 'test', 'fixtures', 'modules') });
  const groups: GroupChild[] = [];
  after(() => {
    for (const g of groups) g.killGroup();
  });

  const startSchedulerProcess = async (extra: string[] = []): Promise<{ address: string; group: GroupChild }> => {
    const { address, child } = await fleet.stack.startExtraScheduler('scheduler', extra, true);
    const group = inGroup(child);
    groups.push(group);
    return { address, group };
  };

  it('an agent given two scheduler addresses moves to the second when the first is killed, and runs a task there', async () => {
    const one = await startSchedulerProcess();
    const two = await startSchedulerProcess();
    const dir = join(fleet.stack.stateDir, 'failover1');
    mkdirSync(dir, { recursive: true });
    const lines: string[] = [];
    const agent = inGroup(
      await startChild(
        process.execPath,
        [
          join(packageRoot(), 'dist', 'agent', 'main.js'),
          '--identity',
          'failover1',
          '--scheduler-address',
          `${one.address},${two.address}`,
          '--cache-dir',
          join(dir, 'cache'),
          '--spool-dir',
          join(dir, 'spool'),
          '--log-level',
          'warn',
          '--insecure',
        ],
        { ready: /connected to/, detached: true, onLine: (line) => lines.push(line) },
      ),
    );
    groups.push(agent);
    const first = /connected to (\S+)/.exec(agent.started.readyLine)![1];
    const [dead, alive] = first === one.address ? [one, two] : [two, one];
    assert.ok([one.address, two.address].includes(first), `connected to one of the two: ${first}`);

    dead.group.killGroup();
    await waitFor('the agent to connect to the surviving scheduler', () => lines.some((l) => l.endsWith(`connected to ${alive.address}`)), 15_000, 50);

    const client = makeClient(SchedulerServiceClient, alive.address);
    try {
      const res = await unary(
        client,
        client.runTask,
        RunTaskRequest.fromPartial({ task: 'runs::sleep', inputJson: '{"seconds": 0}', filter: { identities: ['failover1'] }, waitS: 30 }),
        { deadlineMs: 60_000 },
      );
      assert.equal(res.run?.state, RunState.RUN_STATE_SUCCEEDED, JSON.stringify(res.results));
      assert.deepEqual(
        res.results.map((r) => [r.host, r.state]),
        [['failover1', NodeState.NODE_STATE_SUCCEEDED]],
      );
    } finally {
      client.close();
    }
  });

  it('a Hello storm over the admission limit gets retry delays, and every agent ends registered', async () => {
    const AGENTS = 40;
    const RETRY_MS = 300;
    const scheduler = await startSchedulerProcess(['--max-concurrent-hellos', '1', '--hello-retry-delay-ms', String(RETRY_MS)]);
    // The agents' own connection code, many in this process: what each logs when refused is what is checked.
    const logged: Array<{ msg: string; retryDelayMs?: number; reason?: string }> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) logged.push(JSON.parse(line) as (typeof logged)[number]);
        done();
      },
    });
    const log = pino({ level: 'warn' }, sink);
    // Each agent welcomed, with the address that welcomed it.
    const welcomed = new Map<string, string>();
    const connections = Array.from({ length: AGENTS }, (_, i) => bareAgent(`storm${i}`, [scheduler.address], log, welcomed));
    const client = makeClient(SchedulerServiceClient, scheduler.address);
    const redis = new Redis(fleet.stack.addresses.redis);
    try {
      // Redis holds every command a second at a time, as one flooded by a real storm would, until a
      // Hello was refused: the first Hello keeps its slot meanwhile, so the others are over the
      // limit, however slowly a loaded machine starts the agents.
      const refused = () => logged.filter((l) => l.msg === 'disconnected' && /TOO_MANY_HELLOS|registering \d+ agents already/.test(l.reason ?? ''));
      await redis.call('CLIENT', 'PAUSE', '1000', 'ALL');
      for (const c of connections) c.start();
      await waitFor(
        'a Hello refused or every agent welcomed',
        async () => {
          if (refused().length > 0 || welcomed.size === AGENTS) return true;
          await redis.call('CLIENT', 'PAUSE', '1000', 'ALL');
          return false;
        },
        30_000,
        1000,
      );
      await waitFor('every agent welcomed', () => welcomed.size === AGENTS, 60_000, 50);
      const refusals = refused();
      assert.ok(
        refusals.length > 0,
        `some Hellos were over the limit of 1 and refused; the agents logged: ${JSON.stringify([...new Set(logged.map((l) => `${l.msg}: ${l.reason ?? ''}`))])}`,
      );
      // 0.5-1.5 x the retry delay before the scheduler spent a rate window loaded, a slot at its
      // capacity after (hello-admission.ts): never below a quarter of it, never above the longest.
      for (const r of refusals) {
        assert.ok(
          r.retryDelayMs !== undefined && r.retryDelayMs >= RETRY_MS * 0.25 && r.retryDelayMs <= HELLO_MAX_RETRY_DELAY_MS,
          `a retry delay within ${RETRY_MS * 0.25}-${HELLO_MAX_RETRY_DELAY_MS} ms: ${r.retryDelayMs}`,
        );
      }
      const found = await waitFor(
        'every agent online in discovery',
        async () => {
          const res = await unary(client, client.discoverNodes, {
            filter: { identities: ['/^storm/'], classes: [], facts: [], agents: [], compound: [] },
            includeOffline: false,
          });
          return res.nodes.length === AGENTS ? res : undefined;
        },
        30_000,
        200,
      );
      assert.equal(found.nodes.length, AGENTS);
    } finally {
      redis.disconnect();
      client.close();
      await Promise.all(connections.map((c) => c.stop()));
    }
  });

  it('an agent whose Hello a scheduler refused for now comes back to that scheduler, not to its next one', async () => {
    const AGENTS = 30;
    const busy = await startSchedulerProcess(['--max-concurrent-hellos', '1', '--hello-retry-delay-ms', '300']);
    const other = await startSchedulerProcess();
    const logged: Array<{ msg: string; identity: string; address?: string; reason?: string }> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n').filter(Boolean)) logged.push(JSON.parse(line) as (typeof logged)[number]);
        done();
      },
    });
    const log = pino({ level: 'warn' }, sink);
    const on = new Map<string, string>();
    // Each agent shuffles the addresses: about half try the busy one first.
    const connections = Array.from({ length: AGENTS }, (_, i) =>
      bareAgent(`refused${i}`, [busy.address, other.address], log.child({ identity: `refused${i}` }), on),
    );
    const redis = new Redis(fleet.stack.addresses.redis);
    const refusedByBusy = () =>
      new Set(
        logged
          .filter((l) => l.msg === 'disconnected' && l.address === busy.address && /registering \d+ agents already/.test(l.reason ?? ''))
          .map((l) => l.identity),
      );
    try {
      // Redis holds every command a second at a time until the busy scheduler refused a Hello:
      // its one admitted Hello keeps the slot meanwhile (as in the storm above).
      await redis.call('CLIENT', 'PAUSE', '1000', 'ALL');
      for (const c of connections) c.start();
      await waitFor(
        'a Hello refused by the busy scheduler',
        async () => {
          if (refusedByBusy().size > 0) return true;
          await redis.call('CLIENT', 'PAUSE', '1000', 'ALL');
          return false;
        },
        30_000,
        1000,
      );
      await waitFor('every agent welcomed', () => on.size === AGENTS, 60_000, 50);
      const refused = [...refusedByBusy()].sort();
      assert.ok(refused.length > 0);
      // Moving on to the next scheduler at each refusal, they would all have landed on the other.
      assert.deepEqual(
        refused.filter((identity) => on.get(identity) !== busy.address),
        [],
        `every agent the busy scheduler refused is connected to it; ${refused.length} were refused`,
      );
    } finally {
      redis.disconnect();
      await Promise.all(connections.map((c) => c.stop()));
    }
  });

  it('a replica started later gets agents from one above its fair share, and every agent stays connected', async () => {
    const AGENTS = 10;
    const first = await startSchedulerProcess(['--replica-lease-s', '3']);
    // The second replica's port is known before it runs: the agents are given both from the start.
    const secondPort = await freePort();
    const second = `127.0.0.1:${secondPort}`;
    const on = new Map<string, string>();
    const log = pino({ level: 'silent' });
    const connections = Array.from({ length: AGENTS }, (_, i) => bareAgent(`rebalance${i}`, [first.address, second], log, on));
    const count = (address: string) => [...on.values()].filter((a) => a === address).length;
    try {
      for (const c of connections) c.start();
      await waitFor('every agent on the first replica', () => count(first.address) === AGENTS, 30_000, 50);
      await startSchedulerProcess(['--listen', second, '--replica-lease-s', '3']);
      // Fair share over two replicas: ceil(10 / 2 * 1.1) = 6, so at least 4 agents move.
      await waitFor("agents above the first replica's fair share to move to the second", () => count(second) >= AGENTS - 6 && on.size === AGENTS, 60_000, 100);
      assert.ok(count(first.address) <= 6, `the first replica keeps its fair share: ${count(first.address)}`);
      await waitFor('every agent connected', () => connections.every((c) => c.state === 'CONNECTED'), 30_000, 100);
    } finally {
      await Promise.all(connections.map((c) => c.stop()));
    }
  });
});
