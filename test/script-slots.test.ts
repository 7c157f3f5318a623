import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { Hello } from '../gen/baton/v1/agent_gateway_service';
import { NodeResult, NodeState, RunState } from '../gen/baton/v1/run';
import { unary } from '../lib/grpc-client';
import { INDEX_CHUNK_NODES, RedisKeys } from '../lib/redis';
import { keySlot } from '../lib/redis-client';
import { startRedisServer } from '../lib/redis-server';
import { compileFilter } from '../lib/filter-language';
import { runDiscovery } from '../services/scheduler/discovery-plan';
import { touchNodes } from '../services/scheduler/heartbeat-writer';
import { NodeIndex } from '../services/scheduler/node-index';
import { createRun, newRun, record, startResultsTestService } from './helpers/results-service';
import { uniquePrefix } from './helpers/redis';
import { waitFor } from './helpers/wait';

/** One script call as MONITOR showed it: the keys it declared, and each command it ran. */
interface ScriptCall {
  declared: string[];
  commands: string[][];
}

/**
 * Every script call on a redis-server while `work` runs, from MONITOR: a script's own commands
 * follow its EVAL or EVALSHA line, with `lua` as their source (one server runs one script at a
 * time).
 */
async function scriptCalls(url: string, work: () => Promise<void>): Promise<ScriptCall[]> {
  // Its own connection, made while no other is: ioredis counts a connection as monitoring only a
  // tick after MONITOR's OK, and a MONITOR line arriving in the same read as that OK (the ready
  // check of a connection made just then) is taken for a reply nobody asked for.
  const monitor = new Redis(url, { monitor: true });
  try {
    await new Promise((resolve, reject) => {
      monitor.once('monitoring', resolve);
      monitor.once('error', reject);
    });
  } catch (err) {
    monitor.disconnect();
    throw err;
  }
  const calls: ScriptCall[] = [];
  const end = `end-${uniquePrefix()}`;
  let ended = false;
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    const name = args[0]?.toLowerCase();
    if (source === 'lua') calls.at(-1)?.commands.push(args);
    else if (name === 'eval' || name === 'evalsha') calls.push({ declared: args.slice(3, 3 + Number(args[2])), commands: [] });
    else if (name === 'exists' && args[1] === end) ended = true;
  });
  const client = new Redis(url);
  try {
    await work();
    await client.exists(end);
    await waitFor('the end of the work in MONITOR', () => ended);
    return calls;
  } finally {
    monitor.disconnect();
    client.disconnect();
  }
}

/**
 * Every script the scheduler's discovery index and the results service run, as their paths call
 * them, touches keys of one Redis Cluster slot, all declared in KEYS: each key a script's
 * commands touch (COMMAND GETKEYS, as Redis finds them) is among its declared keys, and those
 * share one slot. Checked on one server, where a Cluster's own check (CROSSSLOT on declared
 * keys) cannot see undeclared keys of the same node.
 */
describe('script calls on Redis Cluster slots', () => {
  it('declares every key it touches, all in one slot: the discovery index over two chunks and replicas, and the results service', async () => {
    const server = await startRedisServer();
    const client = new Redis(server.url);
    const cleanups: Array<() => void> = [];
    try {
      const calls = await scriptCalls(server.url, async () => {
        const keys = new RedisKeys(uniquePrefix());
        const indexRedis = new Redis(server.url);
        cleanups.push(() => indexRedis.disconnect());
        const index = new NodeIndex(indexRedis, keys, 10, 8);
        index.setReplica({ id: 'a-2', held: true, expired: () => Promise.resolve(['a-1']) });
        index.setPeers(['a-1']);
        const hello = (i: number, wave: number) =>
          Hello.fromPartial({
            identity: `n${i}`,
            facts: { rack: `r${(i + wave) % 9}`, cpus: (i * (wave + 1)) % 17, os: { family: i % 2 ? 'redhat' : 'debian' }, serial: `s${i}` },
            classes: [`role::${(i + wave) % 3}`],
            agents: ['bolt_tasks'],
          });
        const fleet = Array.from({ length: INDEX_CHUNK_NODES + 50 }, (_, i) => i);
        await Promise.all(fleet.map((i) => index.upsert(hello(i, 0), `s${i}`)));
        // Changed facts: the old entries are removed.
        await Promise.all([5, 17, INDEX_CHUNK_NODES + 3].map((i) => index.upsert(hello(i, 1), `s${i}`)));
        await touchNodes(
          index,
          [1, INDEX_CHUNK_NODES + 1].map((i) => ({ identity: `n${i}`, sessionId: `s${i}`, atMs: Date.now() })),
        );
        await index.markOffline('n2', 's2');
        await index.markOffline(`n${INDEX_CHUNK_NODES + 2}`, `s${INDEX_CHUNK_NODES + 2}`);
        for (const text of ['rack=r3 and not role::1', 'cpus > 8 or /^role::[02]/', 'os.family=redhat and cpus <= 3', 'serial=s4100']) {
          const found = await runDiscovery(index, compileFilter({ identities: [], classes: [], agents: [], facts: [], compound: [text] }));
          assert.ok(found.online.length > 0, text);
        }
        const results = await startResultsTestService(server.url, uniquePrefix(), { runRetentionS: 1, now: () => new Date(Date.now() + 3_600_000) });
        try {
          const run = await createRun(results, newRun(['h1', 'h2'], { state: RunState.RUN_STATE_RUNNING }));
          await record(results, run.taskId, [NodeResult.fromPartial({ host: 'h1', state: NodeState.NODE_STATE_SUCCEEDED })]);
          await unary(results.client, results.client.getRunStatus, { taskId: run.taskId });
          await unary(results.client, results.client.listRuns, { pageSize: 10, pageToken: '' });
          await results.service.retention.sweep();
        } finally {
          await results.close();
        }
      });
      const names = new Set(calls.map((c) => c.commands[0]?.[0]?.toLowerCase()));
      assert.ok(calls.length > 20 && names.has('hmget') && calls.some((c) => c.declared.some((k) => k.includes(':run:{'))), 'index and run scripts were seen');
      const touched = await Promise.all(
        calls.map(async (call) => {
          const keys = new Set<string>();
          for (const command of call.commands) {
            const found = (await client.call('COMMAND', 'GETKEYS', ...command).catch(() => [])) as string[];
            for (const k of found) keys.add(k);
          }
          return keys;
        }),
      );
      assert.ok(touched.reduce((n, keys) => n + keys.size, 0) > calls.length, "COMMAND GETKEYS found the keys of the scripts' commands");
      calls.forEach((call, i) => {
        const declared = new Set(call.declared);
        const undeclared = [...touched[i]].filter((k) => !declared.has(k));
        assert.deepEqual(undeclared, [], `keys touched but not declared by a call declaring ${call.declared.slice(0, 3).join(' ')}`);
        const slots = new Set(call.declared.map(keySlot));
        assert.ok(slots.size <= 1, `one slot for ${call.declared.slice(0, 6).join(' ')}: ${[...slots].join(', ')}`);
      });
    } finally {
      for (const cleanup of cleanups) cleanup();
      client.disconnect();
      await server.stop();
    }
  });
});
