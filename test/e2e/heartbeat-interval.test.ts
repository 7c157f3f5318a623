import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import IORedis from 'ioredis';
import type { RedisClient as Redis } from '../../lib/redis-client';
import { SchedulerServiceClient } from '../../gen/baton/v1/scheduler_service';
import { makeClient, unary } from '../../lib/grpc-client';
import { packageRoot } from '../../lib/package-root';
import { RedisKeys } from '../../lib/redis';
import { useDevStack } from '../helpers/dev-stack';
import { waitFor } from '../helpers/wait';

/**
 * A scheduler that lets heartbeat intervals grow with the agents it holds, with real processes:
 * redis-server, the services and three agents started one after another, the scheduler aiming at
 * one heartbeat a second between a 1 s and a 3 s interval. Each agent's Welcome gives the
 * interval of the agents held when it was welcomed; the answers to their heartbeats then give
 * every agent the interval of the three held, so together they heartbeat once a second, and
 * every node stays online in discovery throughout, at three times the shortest interval.
 */

const NODES = ['node1', 'node2', 'node3'];
/** How long the pace and online-ness are watched, in ms: three of the longest intervals. */
const WATCH_MS = 9_000;

describe('heartbeat intervals that grow with the agents a replica holds', () => {
  const welcomed = new Map<string, number>();
  const changed = new Map<string, number>();
  const fleet = useDevStack({
    agents: 0,
    environmentpath: join(packageRoot(), 'test', 'fixtures', 'modules'),
    logLevel: 'info',
    onStderr: (name, line) => {
      // The agent's own log line of each Welcome: `connected` with the interval it was told.
      if (!name.startsWith('node')) return;
      try {
        const entry = JSON.parse(line) as { msg?: string; heartbeatIntervalS?: number };
        if (entry.heartbeatIntervalS === undefined) return;
        if (entry.msg === 'connected') welcomed.set(name, entry.heartbeatIntervalS);
        if (entry.msg === 'heartbeat interval changed') changed.set(name, entry.heartbeatIntervalS);
      } catch {
        // not a log line
      }
    },
    serviceArgs: { scheduler: ['--heartbeat-interval-s', '1', '--heartbeat-interval-max-s', '3', '--heartbeats-per-s', '1'] },
  });
  let scheduler: SchedulerServiceClient;
  let redis: Redis;
  const keys = new RedisKeys('baton');

  before(async () => {
    for (let i = 1; i <= NODES.length; i++) await fleet.stack.startAgent(i); // one at a time: each waits for its Welcome
    scheduler = makeClient(SchedulerServiceClient, fleet.stack.addresses.scheduler);
    redis = new IORedis(fleet.stack.addresses.redis);
  });
  after(async () => {
    scheduler.close();
    await redis.quit();
  });

  it('welcomes each agent with the interval its arrival made, moves all to the interval of the agents held, and every node stays online at that pace', async () => {
    // The log line (stderr) may come after the readiness line (stdout) the start waited for.
    await waitFor('every agent to log its Welcome', () => welcomed.size === NODES.length);
    assert.deepEqual(Object.fromEntries(welcomed), { node1: 1, node2: 2, node3: 3 });
    // node1 may be given 2 first, while two agents are held.
    await waitFor('the first two agents to be given the interval of three agents', () => changed.get('node1') === 3 && changed.get('node2') === 3, 10_000);
    assert.equal(changed.get('node3'), undefined, 'node3 was welcomed with it');

    const seen = new Map(NODES.map((n) => [n, new Set<string>()]));
    const notOnline: string[] = [];
    const until = Date.now() + WATCH_MS;
    while (Date.now() < until) {
      const [lastSeen, found] = await Promise.all([
        Promise.all(NODES.map((n) => redis.hget(keys.node(0, n), 'last_seen'))),
        unary(scheduler, scheduler.discoverNodes, { filter: undefined, includeOffline: false }),
      ]);
      lastSeen.forEach((v, i) => v !== null && seen.get(NODES[i])!.add(v));
      const online = new Set(found.nodes.map((n) => n.identity));
      for (const n of NODES) if (!online.has(n)) notOnline.push(`${n} at ${new Date().toISOString()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(notOnline, [], 'every node online at every look');
    // Every node heard every third second (at its first interval, node1 would be heard every second).
    const updates = NODES.map((n) => seen.get(n)!.size);
    assert.ok(
      updates.every((u) => u >= 2 && u <= 4),
      `last-seen updates over ${WATCH_MS} ms: ${NODES.map((n, i) => `${n} ${updates[i]}`).join(', ')}; expected 2 to 4 each`,
    );
  });

  it('refuses a maximum below the interval, in one line', () => {
    const r = spawnSync(
      process.execPath,
      [
        join(packageRoot(), 'dist', 'services', 'scheduler', 'main.js'),
        '--metadata-address',
        '127.0.0.1:1',
        '--results-address',
        '127.0.0.1:1',
        '--heartbeat-interval-s',
        '10',
        '--heartbeat-interval-max-s',
        '5',
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    assert.notEqual(r.status, 0);
    assert.equal(r.stderr.trim(), 'baton-scheduler: heartbeat-interval-max-s must be at least heartbeat-interval-s (10), got 5');
  });
});
