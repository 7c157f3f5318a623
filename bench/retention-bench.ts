import type { RedisClient as Redis } from '../lib/redis-client';
import { RunState } from '../gen/baton/v1/run';
import { createLogger } from '../lib/logger';
import { closeRedis, createRedis, RedisKeys } from '../lib/redis';
import { startRedisServer } from '../lib/redis-server';
import { newTaskId } from '../lib/task-id';
import { RunRetention } from '../services/results/run-retention';
import { RunStore } from '../services/results/run-store';

/**
 * The results service's retention sweep over 100k expired runs (the goal: a sweep over
 * 100k old runs never blocks Redis for long), against a real redis-server: how long the sweep
 * takes, and how long Redis was busy with any single command of it, from the server's own
 * books (SLOWLOG at a 1 ms threshold for the longest, INFO commandstats for the mean per
 * call): a client-side probe in this process would mostly measure this process's event loop.
 * Each run: 100k runs of 3 nodes written with the real create script, then one sweep.
 */

const RUNS_PER_SWEEP = Number(process.env.BATON_BENCH_RETENTION_RUNS ?? 100_000);
const REPEATS = 3;
const NODES = ['node-1', 'node-2', 'node-3'];
const CREATE_CHUNK = 1_000;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Mean µs per call of each command since the last CONFIG RESETSTAT, from INFO commandstats. */
async function commandStats(redis: Redis): Promise<Map<string, { calls: number; usecPerCall: number }>> {
  const info = await redis.info('commandstats');
  const stats = new Map<string, { calls: number; usecPerCall: number }>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=\d+,usec_per_call=([\d.]+)/gm)) {
    stats.set(m[1], { calls: Number(m[2]), usecPerCall: Number(m[3]) });
  }
  return stats;
}

async function fill(store: RunStore, count: number, createdMs: number): Promise<void> {
  for (let start = 0; start < count; start += CREATE_CHUNK) {
    const batch = Array.from({ length: Math.min(CREATE_CHUNK, count - start) }, () =>
      store.createRun(
        {
          taskId: newTaskId(),
          task: 'acme::deploy',
          environment: 'production',
          caller: 'user=alice',
          state: RunState.RUN_STATE_SUCCEEDED,
          nodes: NODES,
          filter: undefined,
          inputJson: '{}',
          createTime: new Date(createdMs),
          endTime: new Date(createdMs),
          error: '',
          noop: false,
          requestId: '',
        },
        new Date(createdMs),
      ),
    );
    await Promise.all(batch);
  }
}

async function main(): Promise<void> {
  const server = await startRedisServer();
  const log = createLogger('bench', 'silent');
  const redis = createRedis({ url: server.url, log, connectionName: 'bench-sweeper' });
  const sweepMs: number[] = [];
  const longestUs: number[] = [];
  const slowCommands: number[] = [];
  const scriptUs: number[] = [];
  const fillSlowCommands: number[] = [];
  const fillLongestUs: number[] = [];
  const rangeUs: number[] = [];
  try {
    await redis.config('SET', 'slowlog-log-slower-than', '1000');
    await redis.config('SET', 'slowlog-max-len', '100000');
    for (let i = 0; i < REPEATS; i++) {
      const store = new RunStore(redis, new RedisKeys(`bench-${i}`));
      const now = Date.now();
      await redis.slowlog('RESET');
      await fill(store, RUNS_PER_SWEEP, now - 2 * 86_400_000);
      // Baseline from the same run: writing as many runs is as much work per run, so slow
      // commands there measure the machine (a shared CPU descheduling redis-server), not the sweep.
      const fillSlow = (await redis.slowlog('GET', 100_000)) as Array<[number, number, number, string[]]>;
      fillSlowCommands.push(fillSlow.length);
      fillLongestUs.push(fillSlow.length > 0 ? Math.max(...fillSlow.map((e) => e[2])) : 0);
      await redis.config('RESETSTAT');
      await redis.slowlog('RESET');
      const retention = new RunRetention({ store, log, runRetentionS: 86_400, now: () => new Date(now) });
      const t0 = performance.now();
      const report = await retention.sweep();
      sweepMs.push(performance.now() - t0);
      if (report.removed !== RUNS_PER_SWEEP) throw new Error(`sweep removed ${report.removed} runs, expected ${RUNS_PER_SWEEP}`);
      const left = await redis.dbsize();
      if (left !== 0) throw new Error(`${left} keys left after the sweep`);
      const slow = (await redis.slowlog('GET', 100_000)) as Array<[number, number, number, string[]]>;
      slowCommands.push(slow.length);
      longestUs.push(slow.length > 0 ? Math.max(...slow.map((e) => e[2])) : 0);
      const stats = await commandStats(redis);
      scriptUs.push(stats.get('evalsha')?.usecPerCall ?? 0);
      rangeUs.push(stats.get('zrangebyscore')?.usecPerCall ?? 0);
    }
    const ms = median(sweepMs);
    const longest = median(longestUs);
    console.log(`retention sweep of ${RUNS_PER_SWEEP} expired runs (${NODES.length} nodes each), median of ${REPEATS}:`);
    console.log(`  sweep time                    ${(ms / 1000).toFixed(2)} s  (${Math.round(RUNS_PER_SWEEP / (ms / 1000))} runs/s)`);
    console.log(`  delete script per run (mean)  ${median(scriptUs).toFixed(1)} µs`);
    console.log(`  candidate read per batch      ${median(rangeUs).toFixed(1)} µs (ZRANGEBYSCORE LIMIT)`);
    const describe = (count: number, us: number) => `${count}; longest ${us > 0 ? `${(us / 1000).toFixed(2)} ms` : 'under 1 ms'}`;
    console.log(`  commands over 1 ms, sweep     ${describe(median(slowCommands), longest)}`);
    console.log(`  commands over 1 ms, creation  ${describe(median(fillSlowCommands), median(fillLongestUs))} (baseline: writing the same runs)`);
  } finally {
    await closeRedis(redis);
    await server.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
