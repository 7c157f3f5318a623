import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { Hello } from '../../gen/baton/v1/agent_gateway_service';
import { createLogger } from '../../lib/logger';
import { RedisKeys } from '../../lib/redis';
import { uniquePrefix, useRedisServer } from '../../test/helpers/redis';
import { TestAgent } from '../../test/helpers/test-agent';
import { waitFor } from '../../test/helpers/wait';
import { NodeIndex } from './node-index';
import { startScheduler, type RunningScheduler, type SchedulerServerOptions } from './scheduler-server';

/**
 * Replica leases and node ownership against a real redis-server: a scheduler (in-process, on
 * 127.0.0.1:0) whose lease is taken from it fences itself and comes back as a new replica, and
 * the Hello's index write moves a node between replicas' owner bitmaps. The metadata and results
 * addresses point nowhere: nothing here runs a task.
 */

const redis = useRedisServer();
const log = createLogger('scheduler', 'silent');
let cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

async function start(keyPrefix: string, replicaName: string, replicaLeaseMs: number, more: Partial<SchedulerServerOptions> = {}): Promise<RunningScheduler> {
  const scheduler = await startScheduler({
    listen: '127.0.0.1:0',
    log,
    redisUrl: redis.url,
    keyPrefix,
    metadataAddress: '127.0.0.1:1',
    resultsAddress: '127.0.0.1:1',
    heartbeatIntervalS: 10,
    drainGraceMs: 500,
    replicaName,
    replicaLeaseMs,
    ...more,
  });
  cleanups.push(() => scheduler.stop());
  return scheduler;
}

function hello(identity: string): Hello {
  return Hello.fromPartial({ identity, facts: {}, classes: [], agents: ['bolt_tasks'], version: '0.1.0' });
}

describe('ReplicaLease', () => {
  it('fences a replica whose lease ended: its agent streams end with UNAVAILABLE, and it comes back under a new epoch that takes Hellos again', async () => {
    const keyPrefix = uniquePrefix();
    const keys = new RedisKeys(keyPrefix);
    const scheduler = await start(keyPrefix, 'fenced', 1_500);
    const first = scheduler.lease.id;
    assert.match(first, /^fenced-\d+$/);
    const agent = await TestAgent.connect(scheduler.address, hello('n1'));
    cleanups.push(() => agent.close());
    assert.equal(await redis.client().hget(keys.node(0, 'n1'), 'owner'), first);

    // As if the lease had run out while the replica stalled: its next renewal finds it ended.
    await redis.client().zadd(keys.replicaLeases(), 1, first);
    await waitFor('the agent stream to end', () => agent.status, 5_000);
    assert.equal(agent.status!.code, status.UNAVAILABLE);
    assert.match(agent.status!.details, /lost its lease in Redis/);

    await waitFor('a new lease', () => scheduler.lease.held && scheduler.lease.id !== first, 5_000);
    const second = scheduler.lease.id;
    assert.equal(Number(second.split('-')[1]), Number(first.split('-')[1]) + 1, 'the next fencing epoch');
    const again = await TestAgent.connect(scheduler.address, hello('n1'));
    cleanups.push(() => again.close());
    assert.equal(await redis.client().hget(keys.node(0, 'n1'), 'owner'), second);
  });
});

describe('the longest heartbeat interval held', () => {
  it("is noted by each replica at its renewal, and every replica judges freshness by the live replicas' longest, not the longest any may give", async () => {
    const keyPrefix = uniquePrefix();
    const keys = new RedisKeys(keyPrefix);
    // Intervals grow by a second per agent held, from 1 s to 3 s (one heartbeat a second aimed at).
    const grow = { heartbeatIntervalS: 1, heartbeatIntervalMaxS: 3, heartbeatsPerS: 1 };
    const a = await start(keyPrefix, 'a', 1_500, grow);
    const b = await start(keyPrefix, 'b', 1_500, grow);
    // B's view before any renewal: the longest a replica may give.
    assert.equal(b.lease.longestHeartbeatIntervalS(3), 3);
    await waitFor('both replicas to note that they hold no agent', async () => {
      const noted = await redis.client().zmscore(keys.replicaHeartbeatIntervals(), a.lease.id, b.lease.id);
      return noted[0] === '0' && noted[1] === '0';
    });
    await waitFor('B to see no interval held', () => b.lease.longestHeartbeatIntervalS(3) === 0);

    const agents: TestAgent[] = [];
    for (const n of ['n1', 'n2', 'n3']) {
      const agent = await TestAgent.connect(a.address, hello(n));
      cleanups.push(() => agent.close());
      agents.push(agent);
    }
    await waitFor('B to see the 3 s interval A gave its third agent', () => b.lease.longestHeartbeatIntervalS(3) === 3);
    agents[2].close();
    await waitFor('B to see 2 s once that agent is gone', () => b.lease.longestHeartbeatIntervalS(3) === 2);

    // A replica that left no longer counts, and its note goes with its lease entry once forgotten.
    const aId = a.lease.id;
    await a.stop();
    await waitFor('B to see no interval held once A left', () => b.lease.longestHeartbeatIntervalS(3) === 0);
    assert.equal(await b.lease.forget(aId), true);
    assert.equal(await redis.client().zscore(keys.replicaHeartbeatIntervals(), aId), null);
  });
});

/** Holds Redis for ARGV[1] ms (by its own clock), as a long script of another client would. */
const BUSY_SCRIPT = `
local function ms() local t = redis.call('TIME') return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000 end
local start = ms()
repeat until ms() - start >= tonumber(ARGV[1])
return 1`;

describe('ReplicaLease under a busy Redis', () => {
  it("keeps its lease while every renewal waits seconds behind other clients' commands, each answer extending it from when Redis ran it", async () => {
    const keyPrefix = uniquePrefix();
    const leaseMs = 3_000;
    const scheduler = await start(keyPrefix, 'queued', leaseMs);
    const first = scheduler.lease.id;
    let fenced = false;
    const watch = setInterval(() => (fenced ||= scheduler.lease.id !== first || !scheduler.lease.held), 20);
    cleanups.push(() => clearInterval(watch));
    // Scripts of 2 s each for 4 leases, the next one as soon as Redis has run a renewal after
    // the last: a renewal sent while one runs waits for it, so it is answered up to 2 s after it
    // was sent. Counted from when they were sent, the renewals would hold the lease 0.7 s past
    // their answer, less than the next one waits.
    const busy = redis.client();
    const reader = redis.client();
    const leases = new RedisKeys(keyPrefix).replicaLeases();
    for (let i = 0; i < (4 * leaseMs) / 2_000; i++) {
      const before = Number(await reader.zscore(leases, first));
      assert.equal(await busy.eval(BUSY_SCRIPT, 0, 2_000), 1);
      await waitFor('a renewal to run after the script', async () => Number(await reader.zscore(leases, first)) > before, 10_000, 5);
    }
    assert.equal(fenced, false, 'the replica kept its lease throughout');
    assert.equal(scheduler.lease.id, first);
    assert.equal(scheduler.lease.state, 'HELD');
  });
});

describe('NodeIndex ownership', () => {
  const replica = (id: string, dead: string[] = []) => ({ id, held: true, expired: () => Promise.resolve(dead) });

  it('moves a node between replicas in the Hello write, learning a replica it did not know, and shows nodes of a dead replica as not connected', async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const onA = new NodeIndex(client, keys, 10);
    onA.setReplica(replica('a-1'));
    const onB = new NodeIndex(client, keys, 10);
    onB.setReplica(replica('b-2', ['a-1']));
    await onA.upsert(hello('n1'), 's1');
    await onA.upsert(hello('n2'), 's2');
    const bit = async (id: string, node: string) => client.getbit(keys.ownerBitmap(0, id), Number(await client.hget(keys.nodeIds(), node)));
    assert.deepEqual([await bit('a-1', 'n1'), await bit('a-1', 'n2')], [1, 1]);

    // B never heard of a-1 (no renewal yet): the write is refused before anything changes, then
    // done again with a-1's bitmap.
    await onB.upsert(hello('n1'), 's3');
    assert.equal(await client.hget(keys.node(0, 'n1'), 'owner'), 'b-2');
    assert.deepEqual([await bit('a-1', 'n1'), await bit('b-2', 'n1'), await bit('a-1', 'n2')], [0, 1, 1]);

    // Seen from B, whose view says a-1's lease ended: n2 is not connected, n1 is.
    const presence = await onB.presence(['n1', 'n2']);
    assert.equal(presence.get('n1')?.connected, true);
    assert.equal(presence.get('n2')?.connected, false);
    const [n1, n2] = await onB.load(['n1', 'n2']);
    assert.deepEqual([onB.isOnline(n1, Date.now(), new Set(['a-1'])), onB.isOnline(n2, Date.now(), new Set(['a-1']))], [true, false]);

    // A stream that ends clears the node's owner bit with its online flag.
    assert.equal(await onB.markOffline('n1', 's3'), true);
    assert.equal(await bit('b-2', 'n1'), 0);
    assert.equal(await client.hget(keys.node(0, 'n1'), 'owner'), null);
  });
});
