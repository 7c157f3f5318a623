import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SchedulerServiceClient } from '../../gen/baton/v1/scheduler_service';
import { freePort } from '../../lib/free-port';
import { makeClient, unary } from '../../lib/grpc-client';
import { createLogger } from '../../lib/logger';
import { RedisKeys } from '../../lib/redis';
import { heartbeatFlushIntervalMs } from '../../services/scheduler/heartbeat-writer';
import { startScheduler } from '../../services/scheduler/scheduler-server';
import { TestAgent } from '../helpers/test-agent';
import { uniquePrefix, useRedisServer } from '../helpers/redis';
import { waitFor } from '../helpers/wait';

/**
 * Heartbeats of many agents at one scheduler: a real redis-server, the scheduler in-process and
 * 200 test agents speaking the agent protocol over real streams.
 */

const redis = useRedisServer();
const AGENTS = 200;

let cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

/** Seconds between heartbeats: long enough for 200 agents to connect on a busy machine before the first is judged silent. */
const HEARTBEAT_INTERVAL_S = 3;
const FLUSH_MS = heartbeatFlushIntervalMs(HEARTBEAT_INTERVAL_S);
/**
 * Scripts Redis has run so far (EVALSHA and EVAL, INFO commandstats): the calls the scheduler
 * writes the index with. Commands a script runs count in commandstats too, so they are left out.
 */
async function scriptCalls(client: ReturnType<typeof redis.client>): Promise<number> {
  const info = await client.info('commandstats');
  let calls = 0;
  for (const m of info.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) calls += Number(m[2]);
  return calls;
}

describe('heartbeat batching', () => {
  it('writes the heartbeats of 200 agents in a few Redis calls per interval, and a silent node still goes offline', async () => {
    const keyPrefix = uniquePrefix();
    const scheduler = await startScheduler({
      listen: '127.0.0.1:0',
      log: createLogger('scheduler', 'silent'),
      redisUrl: redis.url,
      keyPrefix,
      metadataAddress: `127.0.0.1:${await freePort()}`,
      resultsAddress: `127.0.0.1:${await freePort()}`,
      heartbeatIntervalS: HEARTBEAT_INTERVAL_S,
      drainGraceMs: 1_000,
    });
    const client = makeClient(SchedulerServiceClient, scheduler.address);
    const identities = Array.from({ length: AGENTS }, (_, i) => `hb${String(i).padStart(3, '0')}`);
    const agents = await Promise.all(
      identities.map((identity) => TestAgent.connect(scheduler.address, { identity, agents: ['bolt_tasks'], version: '0.1.0' })),
    );
    cleanups.push(async () => {
      for (const a of agents) a.close();
      client.close();
      await scheduler.stop();
    });
    const r = redis.client();
    const keys = new RedisKeys(keyPrefix);
    const online = async () => (await unary(client, client.discoverNodes, { filter: undefined, includeOffline: false })).nodes.map((n) => n.identity).sort();
    assert.deepEqual(await online(), identities);

    // Three heartbeats of every agent, each answered by the scheduler.
    const before = await scriptCalls(r);
    const startedMs = Date.now();
    for (let round = 0; round < 3; round++) {
      for (const a of agents) a.send({ $case: 'heartbeat', value: { sendTime: new Date(), runningTasks: 0, intervalS: 0 } });
      await Promise.all(agents.map((a) => a.next('heartbeat')));
    }
    // Written once a flush ran: every node's last-seen time is one of this round's.
    await waitFor(
      'the heartbeats to be written',
      async () => {
        const scores = await r.zrange(keys.nodes(0), 0, -1, 'WITHSCORES');
        return scores.filter((_, i) => i % 2 === 1).every((s) => Number(s) >= startedMs);
      },
      10_000,
      100,
    );
    const served = (await scriptCalls(r)) - before;
    // One script call per flush (and one more to load the script into this fresh Redis), not one per heartbeat (600).
    const flushes = Math.ceil((Date.now() - startedMs) / FLUSH_MS) + 1;
    assert.ok(served <= flushes + 1, `${served} script calls for ${3 * AGENTS} heartbeats in ${Date.now() - startedMs} ms (${flushes} flushes at most)`);

    // One agent falls silent; the others go on heartbeating: it alone leaves discovery.
    const [silent, ...talking] = agents;
    await waitFor(
      'the silent node to be offline',
      async () => {
        for (const a of talking) a.send({ $case: 'heartbeat', value: { sendTime: new Date(), runningTasks: 0, intervalS: 0 } });
        const nodes = await online();
        return !nodes.includes(identities[0]) && nodes;
      },
      30_000,
      500,
    ).then((nodes) => assert.deepEqual(nodes, identities.slice(1)));
    assert.equal((await silent.ended()).details.includes('no message from the agent'), true);
    assert.deepEqual(await online(), identities.slice(1));
  });
});
