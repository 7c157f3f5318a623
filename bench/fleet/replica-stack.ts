import { join } from 'node:path';
import Redis from 'ioredis';
import { startChild, type StartedChild } from '../../lib/child-process';
import { LISTENING_LINE } from '../../lib/main';
import { packageRoot } from '../../lib/package-root';
import { startRedisServer, type RedisServerProcess } from '../../lib/redis-server';
import { onServiceStderr } from './bench-stack';
import { cpuTimeMs, rssBytes, runQueueWaitMs } from './proc-stats';

/**
 * A stack with several scheduler replicas, every part a separate process: a private
 * redis-server, the metadata and results services, and `replicas` scheduler processes named
 * r1, r2, ... on that Redis, each in a process group of its own, so that killing a replica is
 * killing the whole of it (as a lost machine or an OOM kill would). What the failover benchmark
 * reads about it: the replicas' resident memory, Redis's used memory, a run's coordinator.
 */

/** One scheduler replica. */
export interface Replica {
  /** Its replica name (its replica ids are `<name>-<epoch>`). */
  name: string;
  address: string;
  child: StartedChild;
  /** False once killed. */
  alive: boolean;
}

/** Options of ReplicaStack.start. */
export interface ReplicaStackOptions {
  /** Puppet environmentpath of the metadata service. */
  environmentpath: string;
  replicas: number;
  /** The replicas' lease and their runs' coordinator lease, in s. */
  leaseS: number;
  /** NODE_OPTIONS of the replicas alone (a profiler preloaded); default none. */
  replicaNodeOptions?: string;
}

/** How long a service may take to start, in ms (a loaded machine). */
const START_TIMEOUT_MS = 60_000;
/** The Redis key prefix the services use. */
const KEY_PREFIX = 'baton';

export class ReplicaStack {
  private constructor(
    private readonly redisServer: RedisServerProcess,
    private readonly services: StartedChild[],
    readonly replicas: Replica[],
    readonly resultsAddress: string,
    readonly redis: Redis,
  ) {}

  /** Starts everything; on a failure stops what was started and rethrows. */
  static async start(options: ReplicaStackOptions): Promise<ReplicaStack> {
    const redisServer = await startRedisServer();
    const services: StartedChild[] = [];
    const replicas: Replica[] = [];
    try {
      const metadata = await startService('metadata', ['--environmentpath', options.environmentpath], services);
      const results = await startService('results', ['--redis-url', redisServer.url, '--key-prefix', KEY_PREFIX], services);
      const schedulerArgs = (name: string) => [
        '--redis-url',
        redisServer.url,
        '--key-prefix',
        KEY_PREFIX,
        '--metadata-address',
        metadata,
        '--results-address',
        results,
        '--replica-name',
        name,
        '--replica-lease-s',
        String(options.leaseS),
        '--run-lease-s',
        String(options.leaseS),
      ];
      for (let k = 1; k <= options.replicas; k++) {
        const name = `r${k}`;
        const child = await startChild(process.execPath, serviceArgs('scheduler', schedulerArgs(name)), {
          ready: LISTENING_LINE,
          timeoutMs: START_TIMEOUT_MS,
          detached: true,
          env: options.replicaNodeOptions ? { ...process.env, NODE_OPTIONS: options.replicaNodeOptions } : process.env,
          onStderr: (line) => onServiceStderr(name, line),
        });
        replicas.push({ name, address: LISTENING_LINE.exec(child.readyLine)![1], child, alive: true });
      }
      const redis = new Redis(redisServer.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
      await redis.connect();
      const stack = new ReplicaStack(redisServer, services, replicas, results, redis);
      process.once('exit', () => stack.killReplicasNow());
      return stack;
    } catch (err) {
      for (const r of replicas) killGroup(r.child);
      await Promise.all(services.map((s) => s.stop()));
      await redisServer.stop();
      throw err;
    }
  }

  /** The replicas not killed. */
  get live(): Replica[] {
    return this.replicas.filter((r) => r.alive);
  }

  /** SIGKILL of a replica's whole process group; resolves once its process has exited. */
  async kill(replica: Replica): Promise<void> {
    replica.alive = false;
    const { child } = replica.child;
    const gone = new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
    killGroup(replica.child);
    await gone;
  }

  /** CPU time (user + system) used so far, in ms: by the live replicas together, results, metadata and redis-server. */
  cpuMs(): { replicas: number; results: number; metadata: number; redis: number } {
    const [metadata, results] = this.services.map((s) => cpuTimeMs(s.child.pid!));
    return {
      replicas: this.live.reduce((sum, r) => sum + cpuTimeMs(r.child.child.pid!), 0),
      results,
      metadata,
      redis: cpuTimeMs(this.redisServer.process.child.pid!),
    };
  }

  /** Run-queue wait of the main threads so far, in ms (runQueueWaitMs): the live replicas together, the results service, Redis. */
  queueWaitMs(): { replicas: number; results: number; redis: number } {
    return {
      replicas: this.live.reduce((sum, r) => sum + runQueueWaitMs(r.child.child.pid!), 0),
      results: runQueueWaitMs(this.services[1].child.pid!),
      redis: runQueueWaitMs(this.redisServer.process.child.pid!),
    };
  }

  /** Resident memory of the live replicas together, in bytes. */
  schedulerRssBytes(): number {
    return this.live.reduce((sum, r) => sum + rssBytes(r.child.child.pid!), 0);
  }

  /** Redis's used_memory (INFO memory), in bytes. */
  async redisUsedMemory(): Promise<number> {
    const m = /^used_memory:(\d+)/m.exec(await this.redis.info('memory'));
    if (!m) throw new Error('INFO memory has no used_memory');
    return Number(m[1]);
  }

  /** Makes Redis log every command that holds it longer than `thresholdMs` (SLOWLOG), forgetting what it logged so far. */
  async watchSlowCommands(thresholdMs: number): Promise<void> {
    await this.redis.config('SET', 'slowlog-log-slower-than', String(thresholdMs * 1000));
    await this.redis.config('SET', 'slowlog-max-len', '256');
    await this.redis.slowlog('RESET');
  }

  /**
   * The commands SLOWLOG kept since the last call (then forgotten), longest first: one line each,
   * its duration and its first arguments (a script's sha and keys, not its thousands of values).
   */
  async slowCommands(most: number): Promise<string[]> {
    const entries = (await this.redis.slowlog('GET', 256)) as Array<[number, number, number, string[]]>;
    await this.redis.slowlog('RESET');
    return entries
      .sort((a, b) => b[2] - a[2])
      .slice(0, most)
      .map(
        ([, at, micros, args]) =>
          `${(micros / 1000).toFixed(0)} ms at ${new Date(at * 1000).toISOString().slice(11, 19)}: ${args
            .slice(0, 6)
            .map((a) => String(a).slice(0, 60))
            .join(' ')}`,
      );
  }

  /** The id of the scheduler process coordinating run `taskId` now, from its orchestration state; undefined once the run has none. */
  async coordinatorOf(taskId: string): Promise<string | undefined> {
    return (await this.redis.hget(`${KEY_PREFIX}:run:{${taskId}}:orch`, 'coordinator')) ?? undefined;
  }

  /** Stops the replicas (SIGTERM to each group, then SIGKILL after the grace period), then the services and Redis. */
  async stop(): Promise<void> {
    this.redis.disconnect();
    await Promise.all(
      this.live.map(async (r) => {
        r.alive = false;
        const { child } = r.child;
        if (child.exitCode !== null || child.signalCode !== null) return;
        const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        const timer = setTimeout(() => killGroup(r.child), 10_000);
        process.kill(-child.pid!, 'SIGTERM');
        await gone;
        clearTimeout(timer);
      }),
    );
    await Promise.all(this.services.map((s) => s.stop()));
    await this.redisServer.stop();
  }

  /** Last resort when the benchmark exits without stopping: no replica outlives it. */
  private killReplicasNow(): void {
    for (const r of this.replicas) killGroup(r.child);
  }
}

/** The node arguments that run service `piece` on a free port of 127.0.0.1 with `args`. */
function serviceArgs(piece: string, args: string[]): string[] {
  return [join(packageRoot(), 'dist', 'services', piece, 'main.js'), '--insecure', '--listen', '127.0.0.1:0', '--log-level', 'warn', ...args];
}

/** Starts a service (in the benchmark's process group) and returns its address. */
async function startService(piece: string, args: string[], started: StartedChild[]): Promise<string> {
  const child = await startChild(process.execPath, serviceArgs(piece, args), {
    ready: LISTENING_LINE,
    timeoutMs: START_TIMEOUT_MS,
    onStderr: (line) => onServiceStderr(piece, line),
  });
  started.push(child);
  return LISTENING_LINE.exec(child.readyLine)![1];
}

/** SIGKILL to the process group of a child started with `detached`, unless it is gone. */
function killGroup(started: StartedChild): void {
  const { child } = started;
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // the group is gone already
  }
}
