import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import { DevStack, type DevStackOptions } from '../../cli/dev-stack';
import { Goals } from './goals';
import { childPid, cpuTimeMs } from './proc-stats';

/**
 * What the run benchmarks share: the trivial task module, a dev stack (redis-server and the
 * three services, every one a separate process, via cli/dev-stack.ts) with the pids of its
 * processes, their CPU time read from /proc, and Redis's own traffic counters. Orchestration is
 * everything Baton runs besides the agents: scheduler, results, metadata and redis-server.
 */

/** The processes whose CPU is orchestration. */
export const ORCHESTRATION = ['scheduler', 'results', 'metadata', 'redis'] as const;
/** One of ORCHESTRATION. */
export type OrchestrationProcess = (typeof ORCHESTRATION)[number];
/** A figure per orchestration process. */
export type PerProcess = Record<OrchestrationProcess, number>;

/** The benchmark task: a /bin/sh script printing a small JSON document. */
export const TASK = 'bench::trivial';
const SCRIPT = '#!/bin/sh\necho \'{"ok": true, "bench": "trivial"}\'\n';
const TASK_JSON = JSON.stringify({ puppet_task_version: 1, description: 'Prints a small JSON document', parameters: {} });

/** Writes the task module in Puppet's environmentpath layout under `dir`; returns the environmentpath and the script's path. */
export function writeTaskModule(dir: string): { environmentpath: string; script: string } {
  const tasks = join(dir, 'environments', 'production', 'modules', 'bench', 'tasks');
  mkdirSync(tasks, { recursive: true });
  const script = join(tasks, 'trivial.sh');
  writeFileSync(script, SCRIPT);
  chmodSync(script, 0o755);
  writeFileSync(join(tasks, 'trivial.json'), TASK_JSON);
  return { environmentpath: join(dir, 'environments'), script };
}

/** Service log lines (warnings and errors) seen per process; the first few are printed. */
const serviceLog = new Map<string, number>();
const PRINTED_LOG_LINES = 5;

/** Counts a service log line of process `name`, printing the first few. */
export function onServiceStderr(name: string, line: string): void {
  const seen = serviceLog.get(name) ?? 0;
  serviceLog.set(name, seen + 1);
  if (seen < PRINTED_LOG_LINES) console.error(`  [${name}] ${line.slice(0, 400)}`);
  else if (seen === PRINTED_LOG_LINES) console.error(`  [${name}] ... (further lines counted, not printed)`);
}

/** Redis's traffic counters at one moment (INFO stats and commandstats). */
export interface RedisCounters {
  /** total_net_output_bytes: every byte Redis sent to its clients, i.e. what they read. */
  outputBytes: number;
  /** Calls per command (cmdstat_<name>). */
  calls: Map<string, number>;
  /** Bytes of this reading's own reply, which the next reading counts. */
  ownReplyBytes: number;
}

/** The difference of two RedisCounters readings, without the readings' own traffic. */
export interface RedisTraffic {
  outputBytes: number;
  calls: Map<string, number>;
}

/** A dev stack with no agents, and what the benchmarks read about it. */
export class BenchStack {
  private constructor(
    readonly stack: DevStack,
    readonly pids: Record<OrchestrationProcess, number>,
    private readonly redis: Redis,
  ) {}

  /** Starts redis-server and the three services; NODE_OPTIONS reaches only the services. */
  static async start(environmentpath: string, options: { nodeOptions?: string; serviceArgs?: DevStackOptions['serviceArgs'] } = {}): Promise<BenchStack> {
    const before = process.env.NODE_OPTIONS;
    if (options.nodeOptions) process.env.NODE_OPTIONS = options.nodeOptions;
    let stack: DevStack;
    try {
      stack = await DevStack.start({ agents: 0, environmentpath, logLevel: 'warn', onStderr: onServiceStderr, serviceArgs: options.serviceArgs });
    } finally {
      if (before === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = before;
    }
    const pids = {
      scheduler: childPid(join('dist', 'services', 'scheduler', 'main.js')),
      results: childPid(join('dist', 'services', 'results', 'main.js')),
      metadata: childPid(join('dist', 'services', 'metadata', 'main.js')),
      redis: childPid('redis-server'),
    };
    const redis = new Redis(stack.addresses.redis, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    return new BenchStack(stack, pids, redis);
  }

  /** The scheduler's address. */
  get schedulerAddress(): string {
    return this.stack.addresses.scheduler;
  }

  /** CPU time (user + system) each orchestration process has used so far, in ms. */
  cpuMs(): PerProcess {
    return {
      scheduler: cpuTimeMs(this.pids.scheduler),
      results: cpuTimeMs(this.pids.results),
      metadata: cpuTimeMs(this.pids.metadata),
      redis: cpuTimeMs(this.pids.redis),
    };
  }

  /**
   * Orchestration CPU per process over `windowMs` with nothing running (heartbeats, keepalive
   * pings, timers: what the connected fleet costs whether a run goes on or not), in ms per node
   * per second.
   */
  async idleCpu(nodes: number, windowMs: number): Promise<PerProcess> {
    const before = this.cpuMs();
    const t0 = performance.now();
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    const seconds = (performance.now() - t0) / 1000;
    const d = cpuDelta(before, this.cpuMs());
    return {
      scheduler: d.scheduler / nodes / seconds,
      results: d.results / nodes / seconds,
      metadata: d.metadata / nodes / seconds,
      redis: d.redis / nodes / seconds,
    };
  }

  /** Reads Redis's traffic counters. */
  async redisCounters(): Promise<RedisCounters> {
    const text = await this.redis.info('stats', 'commandstats');
    const output = /^total_net_output_bytes:(\d+)/m.exec(text);
    if (!output) throw new Error('INFO stats has no total_net_output_bytes');
    const calls = new Map<string, number>();
    for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1], Number(m[2]));
    // The reply as sent: a RESP bulk string, `$<length>\r\n<text>\r\n`.
    const length = Buffer.byteLength(text);
    return { outputBytes: Number(output[1]), calls, ownReplyBytes: length + String(length).length + 5 };
  }

  /** Stops the stack. */
  async stop(): Promise<void> {
    this.redis.disconnect();
    await this.stack.stop();
  }
}

/** Traffic between two readings, the earlier reading's own reply and the INFO calls left out. */
export function redisTraffic(before: RedisCounters, after: RedisCounters): RedisTraffic {
  const calls = new Map<string, number>();
  for (const [name, n] of after.calls) {
    const d = n - (before.calls.get(name) ?? 0);
    if (d > 0 && name !== 'info') calls.set(name, d);
  }
  return { outputBytes: after.outputBytes - before.outputBytes - before.ownReplyBytes, calls };
}

/** Sums per-process figures. */
export function total(p: PerProcess): number {
  return ORCHESTRATION.reduce((s, k) => s + p[k], 0);
}

/** `after - before` per process. */
export function cpuDelta(before: PerProcess, after: PerProcess): PerProcess {
  return {
    scheduler: after.scheduler - before.scheduler,
    results: after.results - before.results,
    metadata: after.metadata - before.metadata,
    redis: after.redis - before.redis,
  };
}

/** Redis commands per node result, the most called first, e.g. `evalsha 2.00, hget 1.00`. */
export function callsPerNode(traffic: RedisTraffic, nodes: number, top = 6): string {
  return [...traffic.calls]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, n]) => `${name} ${(n / nodes).toFixed(2)}`)
    .join(', ');
}

/**
 * Runs a benchmark: `body` gets a fresh temporary directory (removed afterwards) and the goals;
 * then the service log lines seen and the whole time are printed, and the process exits 0 when
 * every measured goal was met, 1 when one was missed or the benchmark failed (one line, no stack).
 */
export function runBenchmark(name: string, body: (dir: string, goals: Goals) => Promise<void>): void {
  const run = async (): Promise<number> => {
    const dir = mkdtempSync(join(tmpdir(), `baton-${name}-`));
    const goals = new Goals();
    const started = performance.now();
    try {
      await body(dir, goals);
      if (serviceLog.size > 0) console.log(`service log lines (warnings and errors): ${[...serviceLog].map(([k, v]) => `${k} ${v}`).join(', ')}`);
      console.log(`(whole benchmark: ${Math.round((performance.now() - started) / 1000)} s)`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return goals.exitCode();
  };
  run().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`${name}: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
