import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { Hello } from '../gen/baton/v1/agent_gateway_service';
import { FactOperator, Filter } from '../gen/baton/v1/filter';
import { ResultsServiceClient } from '../gen/baton/v1/results_service';
import { NodeResult, NodeState, RunState } from '../gen/baton/v1/run';
import { startChild } from '../lib/child-process';
import { compileFilter } from '../lib/filter-language';
import { makeClient, unary } from '../lib/grpc-client';
import { LISTENING_LINE } from '../lib/main';
import { packageRoot } from '../lib/package-root';
import { isFinalRunState } from '../lib/run-states';
import { createLogger } from '../lib/logger';
import { closeRedis, createRedis, RedisKeys } from '../lib/redis';
import { dataNodes, infoSum, readyDataNodes, scanKeys, type RedisClient } from '../lib/redis-client';
import { startRedis } from '../lib/redis-cluster-server';
import { newTaskId } from '../lib/task-id';
import { resultsServiceSource, runDiscovery } from '../services/scheduler/discovery-plan';
import { NodeIndex } from '../services/scheduler/node-index';

/**
 * Discovery benchmark. A real redis-server holding NODES synthetic nodes
 * (FACTS facts and CLASSES classes each), registered through the real NodeIndex.upsert, and
 * queried through the real planner (runDiscovery: set algebra in Redis, online filtering,
 * identities back to the caller). Prints:
 * - time to register every node (goal ≤ 20 s) and Redis memory per node (INFO used_memory delta);
 * - p50/p90/p95 over RUNS queries of equality filters and AND/OR/NOT combinations whose results
 *   hold tens of thousands of nodes (goal p50 ≤ 10 ms), and of identity regexes (goal ≤ 10 ms;
 *   after the first query of a regex its answer is kept, node-names.ts), also on a regex's first
 *   query (goal ≤ 10 ms), with a literal prefix and without one;
 * - p50 of a `bolt_task` term against a RUN_NODES-node run stored by a real baton-results
 *   process, asked of the results service on every query (cold: a slim GetRunStatus whose
 *   `where` is the term, answered from the run's briefs) and reused for a finished run
 *   (goal ≤ 50 ms);
 * - a baseline measured in the same run: a raw SINTER returning the 68,000 names of one fact
 *   value (what every query cost before the bitmaps), with each query's ratio to it;
 * - Redis memory per node for RARE_NODES nodes with UNIQUE_FACTS fact values each that no other
 *   node has (as real facter output has: serials, MACs, addresses, sizes), against two goals:
 *   ≤ RARE_NODE_GOAL_BYTES in all, and ≤ RARE_INDEX_GOAL_BYTES of index keys besides the node's
 *   hash (its facts and the list of its entries, which the node's own text sizes), that is the
 *   14-byte record per rare value (docs/discovery-index.md) with room for the buckets' keys and
 *   the ids; printed with what one set per value (the layout before records) takes for the same
 *   values, built on RARE_OLD_LAYOUT_NODES of them; and the p50 of an equality on such a value.
 * Exits non-zero when a goal is missed.
 * Run: `npx buf generate && npx tsc -p . && npm run bench -- discovery-bench` (a few minutes).
 * Environment: BATON_BENCH_REDIS=cluster runs it on a local 3-master Redis Cluster (memory and
 * CPU summed over the masters); BATON_BENCH_DISCOVERY_NODES (default 100,000) and
 * BATON_BENCH_RARE_NODES (default 4,096: one index chunk, whose buckets of rare values are then as
 * full as they get) for a quick try.
 */

const NODES = Number(process.env.BATON_BENCH_DISCOVERY_NODES ?? 100_000);
const ON_CLUSTER = process.env.BATON_BENCH_REDIS === 'cluster';
const FACTS = 20;
const CLASSES = 10;
const RUN_NODES = 10_000;
const RARE_NODES = Number(process.env.BATON_BENCH_RARE_NODES ?? 4096);
const UNIQUE_FACTS = 200;
const RARE_NODE_GOAL_BYTES = 32 * 1024;
const RARE_INDEX_GOAL_BYTES = 4 * 1024;
const RARE_OLD_LAYOUT_NODES = 100;
const RUNS = 30;
/** Hellos in flight at once while registering (ioredis pipelines them on one connection). */
const REGISTER_CONCURRENCY = 500;

function identity(i: number): string {
  return `node${String(i).padStart(6, '0')}.dc${i % 4}.example.com`;
}

/** Node i's Hello: a few low-cardinality facts (so equality matches tens of thousands), numbers, and classes. */
function hello(i: number): Hello {
  const facts: Record<string, unknown> = {
    os: { family: i % 10 < 7 ? 'RedHat' : 'Debian', release: { major: String(7 + (i % 3)) } },
    datacenter: `dc${i % 4}`,
    role: ['web', 'db', 'cache', 'queue', 'batch'][i % 5],
    environment: i % 2 === 0 ? 'production' : 'staging',
    processors: { count: 2 ** (i % 6) },
    memory_mb: 1024 * (1 + (i % 64)),
    uptime_days: i % 365,
    is_virtual: i % 3 !== 0,
    kernel: 'Linux',
    rack: `r${i % 200}`,
    serial: `SN${i}`,
  };
  for (let f = Object.keys(facts).length; f < FACTS - 2; f++) facts[`custom_${f}`] = `value_${(i * 7 + f) % 50}`;
  const classes = ['profile::base', `role::${facts.role as string}`];
  for (let c = classes.length; c < CLASSES; c++) classes.push(`profile::feature_${(i + c * 13) % 40}`);
  return Hello.fromPartial({ identity: identity(i), facts, classes, agents: ['bolt_tasks', 'rpcutil'], version: '0.1.0' });
}

/** Node i of the rare-values fleet: UNIQUE_FACTS facts whose values no other node has (~20 characters each, as a MAC or a serial). */
function uniqueHello(i: number): Hello {
  const facts: Record<string, unknown> = {};
  for (let f = 0; f < UNIQUE_FACTS; f++) facts[`unique_fact_${f}`] = uniqueValue(i, f);
  return Hello.fromPartial({ identity: identity(i), facts, classes: ['profile::base'], agents: ['bolt_tasks', 'rpcutil'], version: '0.1.0' });
}

function uniqueValue(i: number, f: number): string {
  return `v${String(i).padStart(6, '0')}-${String(f).padStart(3, '0')}-${((i * 2654435761 + f * 40503) >>> 0).toString(16)}`;
}

/** Whether a goal was missed: the benchmark then exits non-zero. */
let missed = false;

function verdict(ok: boolean, miss: string): string {
  if (!ok) missed = true;
  return ok ? 'meets' : `MISSES by ${miss}`;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** p50 of the transfer-floor baseline measured in the same run, for the ratio column. */
let baselineP50Ms: number | undefined;

/** Runs `once` RUNS times after two warm-up runs and prints p50/p90/p95, with a verdict when there is a goal. */
async function measure(name: string, goalMs: number | undefined, once: () => Promise<number>): Promise<number> {
  let matched = 0;
  const times: number[] = [];
  for (let r = 0; r < RUNS + 2; r++) {
    const t0 = process.hrtime.bigint();
    matched = await once();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r >= 2) times.push(ms); // two warm-up runs
  }
  times.sort((a, b) => a - b);
  const p50 = percentile(times, 50);
  const goal =
    goalMs === undefined ? '' : `  goal ≤ ${goalMs} ms: ${verdict(p50 <= goalMs, `${(p50 - goalMs).toFixed(1)} ms (${(p50 / goalMs).toFixed(1)}x)`)}`;
  const ratio = baselineP50Ms === undefined ? '' : `  ${(p50 / baselineP50Ms).toFixed(2)}x baseline`;
  const at = (p: number) => `p${p} ${percentile(times, p).toFixed(2).padStart(7)} ms`;
  console.log(`${name.padEnd(58)} matches ${String(matched).padStart(6)}  ${at(50)}  ${at(90)}  ${at(95)}${ratio}${goal}`);
  return p50;
}

/** Bytes Redis uses for the keys matching `pattern` (MEMORY USAGE of each, every element counted, found with SCAN on every master). */
async function memoryOf(redis: RedisClient, pattern: string): Promise<number> {
  let bytes = 0;
  for (const node of await readyDataNodes(redis)) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      for (const k of keys) bytes += Number(await node.call('MEMORY', 'USAGE', k, 'SAMPLES', 0));
    } while (cursor !== '0');
  }
  return bytes;
}

/** MEMORY USAGE of one key, asked of the master holding it. */
async function keyMemory(redis: RedisClient, key: string): Promise<number> {
  for (const node of dataNodes(redis)) {
    if ((await node.exists(key).catch(() => 0)) === 1) return Number(await node.call('MEMORY', 'USAGE', key, 'SAMPLES', 0));
  }
  return 0;
}

/** CPU seconds (user and system) each master has used since it started. */
async function mastersCpuS(redis: RedisClient): Promise<number[]> {
  const texts = await Promise.all((await readyDataNodes(redis)).map((node) => node.info('cpu')));
  const field = (text: string, name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(text)?.[1]) || 0;
  return texts.map((text) => field(text, 'used_cpu_user') + field(text, 'used_cpu_sys'));
}

/** CPU seconds (user and system) a process of this machine has used, from /proc (Linux); 0 when unknown. */
function processCpuS(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    // After the command's `(name)`: state, then 11 fields, then utime and stime in clock ticks.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
  } catch {
    return 0;
  }
}

/** Linux's USER_HZ, the unit of /proc/<pid>/stat's times. */
const CLOCK_TICKS_PER_S = 100;

function fact(f: string, operator: FactOperator, value: string) {
  return { fact: f, operator, value };
}

async function main(): Promise<void> {
  const server = await startRedis({ cluster: ON_CLUSTER });
  const redis = createRedis({ url: server.url, log: createLogger('bench', 'warn'), connectionName: 'bench-discovery' });
  const keys = new RedisKeys('bench');
  const index = new NodeIndex(redis, keys, 3600); // long heartbeat: every node stays online during the bench
  const results = await startChild(
    process.execPath,
    [
      join(packageRoot(), 'dist', 'services', 'results', 'main.js'),
      '--listen',
      '127.0.0.1:0',
      '--log-level',
      'warn',
      '--redis-url',
      server.url,
      '--key-prefix',
      'bench-results',
      '--insecure',
    ],
    { ready: LISTENING_LINE },
  );
  const resultsClient = makeClient(ResultsServiceClient, LISTENING_LINE.exec(results.readyLine)![1]);
  try {
    const memBefore = await infoSum(redis, 'memory', 'used_memory');
    // CPU seconds as well as wall time: on a shared machine the wall time mostly says how busy
    // the other processes were.
    const redisCpuS = async () => (await infoSum(redis, 'cpu', 'used_cpu_user')) + (await infoSum(redis, 'cpu', 'used_cpu_sys'));
    const redisCpuBefore = await redisCpuS();
    const mastersCpuBefore = await mastersCpuS(redis);
    const benchCpuBefore = process.cpuUsage();
    const t0 = Date.now();
    let next = 0;
    const now = Date.now();
    await Promise.all(
      Array.from({ length: REGISTER_CONCURRENCY }, async () => {
        while (next < NODES) {
          const i = next++;
          await index.upsert(hello(i), `s${i}`, now);
        }
      }),
    );
    const registerS = (Date.now() - t0) / 1000;
    const redisCpuUsedS = (await redisCpuS()) - redisCpuBefore;
    const mastersCpuUsedS = (await mastersCpuS(redis)).map((cpu, i) => cpu - mastersCpuBefore[i]);
    const benchCpu = process.cpuUsage(benchCpuBefore);
    const benchCpuUsedS = (benchCpu.user + benchCpu.system) / 1e6;
    const memAfter = await infoSum(redis, 'memory', 'used_memory');
    console.log(
      `discovery bench${ON_CLUSTER ? ' on a 3-master Redis Cluster' : ''}: ${NODES} nodes, ${FACTS} facts and ${CLASSES} classes each, ${RUNS} runs per query (p50/p90/p95 after 2 warm-up runs)`,
    );
    console.log(
      `register ${NODES} nodes through NodeIndex.upsert: ${registerS.toFixed(1)} s  goal ≤ 20 s: ${verdict(registerS <= 20, `${(registerS - 20).toFixed(1)} s`)}`,
    );
    console.log(
      `  CPU used meanwhile: redis-server ${redisCpuUsedS.toFixed(1)} s (${((redisCpuUsedS / NODES) * 1e6).toFixed(0)} µs per node), this process (the scheduler's part) ${benchCpuUsedS.toFixed(1)} s`,
    );
    // Whether the wall time is the CPU's: each master's share, and all of it against what the
    // machine's cores could give in that time (shared with whatever else runs there).
    console.log(
      `  per master ${mastersCpuUsedS.map((cpu) => `${cpu.toFixed(1)} s`).join(', ')}; redis-server and this process together ${(((redisCpuUsedS + benchCpuUsedS) / registerS) * 100).toFixed(0)}% of one core over ${registerS.toFixed(1)} s (${cpus().length} cores, load average ${loadavg()[0].toFixed(1)})`,
    );
    console.log(
      `Redis memory per node: ${((memAfter - memBefore) / NODES / 1024).toFixed(2)} KiB (used_memory delta ${((memAfter - memBefore) / 2 ** 20).toFixed(0)} MiB / ${NODES})`,
    );
    const bitmapBytes = await memoryOf(redis, `${keys.prefix}:{idx:*}:bits:*`);
    const idBytes = (await keyMemory(redis, keys.nodeIds())) + (await keyMemory(redis, keys.nodeNames()));
    const setBytes =
      (await memoryOf(redis, `${keys.prefix}:{idx:*}:fact:*`)) +
      (await memoryOf(redis, `${keys.prefix}:{idx:*}:class:*`)) +
      (await memoryOf(redis, `${keys.prefix}:{idx:*}:agent:*`));
    const rareBytes = await memoryOf(redis, `${keys.prefix}:{idx:*}:rare:*`);
    const nodeBytes = await memoryOf(redis, `${keys.prefix}:{idx:*}:node:*`);
    console.log(
      `  of which bitmaps ${(bitmapBytes / NODES).toFixed(0)} B/node (${(await scanKeys(redis, `${keys.prefix}:{idx:*}:bits:*`)).length} bitmaps), ` +
        `small membership sets ${(setBytes / NODES).toFixed(0)} B/node, records of rare fact values ${(rareBytes / NODES).toFixed(0)} B/node, ` +
        `node hashes ${(nodeBytes / NODES).toFixed(0)} B/node, id hash + list ${(idBytes / NODES).toFixed(0)} B/node`,
    );
    await rareValues(redis);
    // Some nodes offline, so offline counting is part of every query.
    for (let i = 0; i < NODES; i += 50) await index.markOffline(identity(i), `s${i}`);

    const E = FactOperator.FACT_OPERATOR_EQUAL;
    const q = (name: string, filter: Partial<Filter>, goalMs = 10, runResults?: ReturnType<typeof resultsServiceSource>) =>
      measure(name, goalMs, async () => (await runDiscovery(index, compileFilter(Filter.fromPartial(filter)), { runResults })).online.length);
    // The floor of the index before bitmaps, for any query returning that many identities: one
    // SINTER of two sets of names (os.family=RedHat and the online nodes, built here as that
    // index held them), no planning, no temp keys, no offline counting.
    // One hash tag: SINTER takes keys of one Redis Cluster slot.
    const namesSet = `${keys.prefix}:{baseline}:redhat`;
    const onlineSet = `${keys.prefix}:{baseline}:online`;
    const redhatNames = Array.from({ length: NODES }, (_, i) => i)
      .filter((i) => i % 10 < 7)
      .map(identity);
    const onlineNames = Array.from({ length: NODES }, (_, i) => i)
      .filter((i) => i % 50 !== 0)
      .map(identity);
    for (let i = 0; i < redhatNames.length; i += 10_000) await redis.sadd(namesSet, ...redhatNames.slice(i, i + 10_000));
    for (let i = 0; i < onlineNames.length; i += 10_000) await redis.sadd(onlineSet, ...onlineNames.slice(i, i + 10_000));
    baselineP50Ms = await measure(
      'baseline: raw SINTER fact set ∩ online set (old transfer floor)',
      undefined,
      async () => (await redis.sinter(namesSet, onlineSet)).length,
    );
    await measure('baseline: SINTERCARD of the same (count only)', undefined, async () => Number(await redis.call('SINTERCARD', 2, namesSet, onlineSet)));
    await q('fact equality os.family=RedHat', { facts: [fact('os.family', E, 'RedHat')] });
    await q('class equality profile::base (every node)', { classes: ['profile::base'] });
    await q('AND: os.family=RedHat, environment=production, role::web', {
      facts: [fact('os.family', E, 'RedHat'), fact('environment', E, 'production')],
      classes: ['role::web'],
    });
    await q('OR: role::web or role::db (compound)', { compound: ['role::web or role::db'] });
    await q('NOT: not os.family=debian (compound)', { compound: ['not os.family=debian'] });
    await q('AND/OR/NOT: (dc0 or dc1) and not role::db', { compound: ['(datacenter=dc0 or datacenter=dc1) and not role::db'] });
    await q('numeric range memory_mb >= 32768', { facts: [fact('memory_mb', FactOperator.FACT_OPERATOR_GREATER_EQUAL, '32768')] });
    // An odd node: every 50th is offline.
    const serial = `SN${(NODES >> 1) | 1}`;
    await q(`fact equality serial=${serial} (a rare value: records)`, { facts: [fact('serial', E, serial)] });
    await q('identity regex /^node0[0-4].*dc1/', { identities: ['/^node0[0-4].*dc1/'] });
    await q('identity regex /^node0012\\d\\d/ (100 matches)', { identities: ['/^node0012\\d\\d/'] });
    // The same regexes written anew for every run (an empty group more each time): no run finds
    // the answer kept from an earlier one (node-names.ts), so this is what a regex's first query
    // costs, with a literal prefix and without one (every identity tested).
    let fresh = 0;
    for (const regex of ['^node0[0-4].*dc1', '\\.dc[12]\\.']) {
      await measure(`identity regex /${regex}/, first query of each regex`, 10, async () => {
        const pattern = `/${regex}${'(?:)'.repeat(++fresh)}/`;
        return (await runDiscovery(index, compileFilter(Filter.fromPartial({ identities: [pattern] })))).online.length;
      });
    }

    // bolt_task against a RUN_NODES-node run in a real results service.
    const taskId = newTaskId();
    const runNodes = Array.from({ length: RUN_NODES }, (_, i) => identity(i * 3));
    await unary(resultsClient, resultsClient.createRun, {
      run: {
        taskId,
        task: 'demo::fail',
        environment: 'production',
        caller: 'bench',
        state: RunState.RUN_STATE_RUNNING,
        nodes: runNodes,
        inputJson: '{}',
        createTime: new Date(),
        error: '',
        noop: false,
        requestId: '',
      },
    });
    for (let i = 0; i < RUN_NODES; i += 1000) {
      const batch = runNodes.slice(i, i + 1000).map((host, j) =>
        NodeResult.fromPartial({
          host,
          taskId,
          task: 'demo::fail',
          callerid: 'bench',
          state: NodeState.NODE_STATE_SUCCEEDED,
          exitcode: (i + j) % 4 === 0 ? 3 : 0,
          completed: true,
          runtime: 0.1,
          startTime: new Date(),
          stdout: '{}',
        }),
      );
      await unary(resultsClient, resultsClient.recordNodeResults, { taskId, results: batch });
    }
    // Cold: every query reads the run from the results service (a run still going, or the first
    // query of a finished one). Finished: the scheduler reuses a finished run's read for
    // FINISHED_RUN_CACHE_TTL_MS (discovery-plan.ts), as repeated queries of one run do.
    const cold = resultsServiceSource(resultsClient, { cacheTtlMs: 0 });
    const coldCpuBefore = { redis: await redisCpuS(), results: processCpuS(results.child.pid), bench: process.cpuUsage() };
    await q(`bolt_task exitcode > 0 over a ${RUN_NODES}-node run (cold read)`, { compound: [`bolt_task('${taskId}').exitcode > 0`] }, 50, cold);
    const perQueryMs = (s: number) => ((s / (RUNS + 2)) * 1000).toFixed(1);
    const coldBench = process.cpuUsage(coldCpuBefore.bench);
    console.log(
      `  CPU per query: baton-results ${perQueryMs(processCpuS(results.child.pid) - coldCpuBefore.results)} ms, redis-server ${perQueryMs((await redisCpuS()) - coldCpuBefore.redis)} ms, this process (the scheduler's part) ${perQueryMs((coldBench.user + coldBench.system) / 1e6)} ms`,
    );
    await q(`bolt_task exitcode > 0 and role::web (cold read)`, { compound: [`bolt_task('${taskId}').exitcode > 0 and role::web`] }, 50, cold);
    await q(`bolt_task exitcode == 0 (7,500 of the run, cold read)`, { compound: [`bolt_task('${taskId}').exitcode == 0`] }, 50, cold);
    await q(`bolt_task known == false (nodes outside the run, cold)`, { compound: [`bolt_task('${taskId}').known == false`] }, 50, cold);
    const status = await unary(resultsClient, resultsClient.getRunStatus, { taskId });
    if (!status.run || !isFinalRunState(status.run.state))
      await unary(resultsClient, resultsClient.updateRunState, { taskId, state: RunState.RUN_STATE_FAILED, reason: '' });
    const finished = resultsServiceSource(resultsClient);
    await q(`bolt_task exitcode > 0 (finished run, reused read)`, { compound: [`bolt_task('${taskId}').exitcode > 0`] }, 50, finished);
    await q(`bolt_task exitcode > 0 and role::web (finished, reused)`, { compound: [`bolt_task('${taskId}').exitcode > 0 and role::web`] }, 50, finished);
  } finally {
    resultsClient.close();
    await results.stop();
    await closeRedis(redis);
    await server.stop();
  }
}

/**
 * The rare-values part: RARE_NODES nodes with UNIQUE_FACTS unique values each, under a prefix of
 * their own, measured as used_memory grew while they were written (and by MEMORY USAGE of their
 * hashes and buckets); one set per value, as the index stored them before records, built for
 * RARE_OLD_LAYOUT_NODES of them and measured alike; then an equality on one of their values.
 */
async function rareValues(redis: RedisClient): Promise<void> {
  const keys = new RedisKeys('bench-rare');
  const index = new NodeIndex(redis, keys, 3600);
  const before = await infoSum(redis, 'memory', 'used_memory');
  const t0 = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: REGISTER_CONCURRENCY }, async () => {
      while (next < RARE_NODES) {
        const i = next++;
        await index.upsert(uniqueHello(i), `s${i}`);
      }
    }),
  );
  const registerS = (Date.now() - t0) / 1000;
  const perNode = ((await infoSum(redis, 'memory', 'used_memory')) - before) / RARE_NODES;
  const nodeHash = (await memoryOf(redis, `${keys.prefix}:{idx:*}:node:*`)) / RARE_NODES;
  const records = (await memoryOf(redis, `${keys.prefix}:{idx:*}:rare:*`)) / RARE_NODES;
  const old = new RedisKeys('bench-rare-old');
  for (let i = 0; i < Math.min(RARE_OLD_LAYOUT_NODES, RARE_NODES); i++) {
    const pipeline = redis.pipeline();
    for (let f = 0; f < UNIQUE_FACTS; f++) pipeline.sadd(old.factValue(0, `unique_fact_${f}`, uniqueValue(i, f)), identity(i));
    await pipeline.exec();
  }
  const oldSets = (await memoryOf(redis, `${old.prefix}:{idx:*}:fact:*`)) / Math.min(RARE_OLD_LAYOUT_NODES, RARE_NODES);
  const indexBytes = perNode - nodeHash;
  console.log(`Redis memory per node with ${UNIQUE_FACTS} unique fact values (${RARE_NODES} such nodes, registered in ${registerS.toFixed(1)} s):`);
  console.log(
    `  in all ${(perNode / 1024).toFixed(1)} KiB  goal ≤ ${RARE_NODE_GOAL_BYTES / 1024} KiB: ${verdict(perNode <= RARE_NODE_GOAL_BYTES, `${((perNode - RARE_NODE_GOAL_BYTES) / 1024).toFixed(1)} KiB`)}`,
  );
  console.log(
    `  index keys besides the node's hash ${indexBytes.toFixed(0)} B (${(indexBytes / UNIQUE_FACTS).toFixed(1)} B per unique value; records of rare values ${records.toFixed(0)} B)  goal ≤ ${RARE_INDEX_GOAL_BYTES} B: ${verdict(indexBytes <= RARE_INDEX_GOAL_BYTES, `${(indexBytes - RARE_INDEX_GOAL_BYTES).toFixed(0)} B`)}`,
  );
  console.log(
    `  node hash (facts and the list of its entries) ${(nodeHash / 1024).toFixed(1)} KiB; one set per value instead of records (the layout before) would add ${(oldSets / 1024).toFixed(1)} KiB per node`,
  );
  const value = uniqueValue(RARE_NODES >> 1, 7);
  await measure(`fact equality unique_fact_7=${value} (rare)`, 10, async () => {
    const found = await runDiscovery(index, compileFilter(Filter.fromPartial({ facts: [fact('unique_fact_7', FactOperator.FACT_OPERATOR_EQUAL, value)] })));
    return found.online.length;
  });
}

main().then(
  () => {
    if (missed) process.exitCode = 1;
  },
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
