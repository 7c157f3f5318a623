import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { RunTaskRequest, SchedulerServiceClient } from '../../gen/baton/v1/scheduler_service';
import { makeClient, unary } from '../../lib/grpc-client';
import { packageRoot } from '../../lib/package-root';
import { useDevStack } from '../helpers/dev-stack';
import { waitFor } from '../helpers/wait';

/**
 * Heartbeats only where they tell something, with real processes (redis-server, the services and
 * one agent): the scheduler counts every message as a heartbeat, so an agent whose stream is busy
 * both ways (runs started every quarter of its 1 s interval) skips its Heartbeats, and stays
 * online in discovery all the same, its last-seen noted from what it sends; idle, it sends one
 * every interval.
 */

/** How long each phase is watched, in ms: four heartbeat intervals. */
const PHASE_MS = 4_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('heartbeats while an agent is busy', () => {
  let metricsAt = '';
  const fleet = useDevStack({
    agents: 1,
    environmentpath: join(packageRoot(), 'test', 'fixtures', 'modules'),
    logLevel: 'info',
    onStderr: (name, line) => {
      if (name === 'scheduler' && line.includes('metrics served at /metrics')) metricsAt = (JSON.parse(line) as { address: string }).address;
    },
    serviceArgs: { scheduler: ['--heartbeat-interval-s', '1', '--metrics-listen', '127.0.0.1:0'] },
  });
  let scheduler: SchedulerServiceClient;
  before(() => {
    scheduler = makeClient(SchedulerServiceClient, fleet.stack.addresses.scheduler);
  });
  after(() => scheduler.close());

  /** Heartbeats the scheduler received so far, from its metrics. */
  const heartbeats = async (): Promise<number> => {
    const text = await (await fetch(`http://${metricsAt}/metrics`)).text();
    return Number(/^baton_agent_heartbeats_total (\S+)$/m.exec(text)?.[1] ?? 0);
  };
  const online = async (): Promise<boolean> => {
    const found = await unary(scheduler, scheduler.discoverNodes, { filter: undefined, includeOffline: false });
    return found.nodes.some((n) => n.identity === 'node1');
  };

  it('skips Heartbeats while runs keep the stream busy, keeps the node online, and sends them again when idle', async () => {
    await waitFor('the scheduler to log its metrics address', () => metricsAt !== '');

    const idleStart = await heartbeats();
    await sleep(PHASE_MS);
    const idle = (await heartbeats()) - idleStart;
    assert.ok(idle >= 3, `only ${idle} heartbeats in ${PHASE_MS} ms idle at a 1 s interval`);

    const busyStart = await heartbeats();
    const started: Array<Promise<unknown>> = [];
    const offline: string[] = [];
    for (const until = Date.now() + PHASE_MS; Date.now() < until;) {
      const request = RunTaskRequest.fromPartial({ task: 'runs::sleep', inputJson: JSON.stringify({ seconds: 0 }), background: true });
      started.push(unary(scheduler, scheduler.runTask, request));
      if (!(await online())) offline.push(new Date().toISOString());
      await sleep(250);
    }
    await Promise.all(started);
    const busy = (await heartbeats()) - busyStart;
    // Last-seen is judged over 3 intervals: without notes from the runs' messages the node would
    // have gone stale within this phase.
    assert.deepEqual(offline, [], 'node1 online at every look while busy');
    assert.ok(await online(), 'node1 online at the end of the busy phase');
    assert.ok(busy * 2 < idle, `${busy} heartbeats while busy against ${idle} idle over the same time`);

    const againStart = await heartbeats();
    await sleep(PHASE_MS);
    const again = (await heartbeats()) - againStart;
    assert.ok(again >= 3, `only ${again} heartbeats in ${PHASE_MS} ms idle again`);
  });
});
