import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { Hello } from '../../gen/baton/v1/agent_gateway_service';
import { RedisKeys } from '../../lib/redis';
import { uniquePrefix, useRedisServer } from '../../test/helpers/redis';
import { routeNodes } from './dispatch-stream';
import { NodeIndex } from './node-index';

const redis = useRedisServer();

function hello(identity: string): Hello {
  return Hello.fromPartial({ identity, facts: { os: { family: 'RedHat' } }, classes: [], agents: ['bolt_tasks'], version: '0.1.0' });
}

describe('routeNodes', () => {
  it("routes each node to the replica whose owner bitmap holds it, the others nowhere, and lets the event loop in while it looks up a run's every node", async () => {
    const client = redis.client();
    const keys = new RedisKeys(uniquePrefix());
    const index = new NodeIndex(client, keys, 10);
    index.setReplica({ id: 'r-1', held: true, expired: () => Promise.resolve([]) });
    await Promise.all(['a', 'b', 'c'].map((n) => index.upsert(hello(n), `s-${n}`, 1_000)));
    const small = await routeNodes(index, ['r-1', 'r-2'], 'r-2', ['a', 'x', 'c']);
    assert.deepEqual([...small.byReplica], [['r-1', ['a', 'c']]]);
    assert.deepEqual(small.nowhere, ['x']);

    // A run's worth of names: the loop over them is long enough to be cut into slices, so the
    // event loop turns many times while it runs, never held for most of it.
    const many = [...Array.from({ length: 600_000 }, (_, i) => `gone${i}`), 'b'];
    let turns = 0;
    let longestGapMs = 0;
    let running = true;
    const ticking = (async () => {
      let last = performance.now();
      while (running) {
        await yieldToEventLoop();
        const now = performance.now();
        longestGapMs = Math.max(longestGapMs, now - last);
        last = now;
        turns++;
      }
    })();
    const t0 = performance.now();
    const routes = await routeNodes(index, ['r-1', 'r-2'], 'r-2', many);
    const tookMs = performance.now() - t0;
    running = false;
    await ticking;
    assert.deepEqual([...routes.byReplica], [['r-1', ['b']]]);
    assert.equal(routes.nowhere.length, 600_000);
    assert.ok(turns >= 3, `the event loop turned ${turns} times in ${tookMs.toFixed(0)} ms`);
    assert.ok(longestGapMs < tookMs / 2, `the event loop was held for ${longestGapMs.toFixed(0)} ms of ${tookMs.toFixed(0)} ms`);
  });
});
