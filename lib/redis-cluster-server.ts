import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis as RedisClient } from 'ioredis';
import { freePort, retryWhilePortTaken } from './free-port';
import { startChild, type StartedChild } from './child-process';
import { hasRedisServer, REDIS_INSTALL_HINT, startRedisServer } from './redis-server';

/**
 * A private Redis Cluster of three masters on 127.0.0.1 (Debian's redis-server with
 * `cluster-enabled yes`, joined by `redis-cli --cluster create`), for `baton dev` style stacks
 * and the tests that run on a cluster as well as on one server. Every node runs in a process
 * group of its own, ended whole; ports are free ones asked of the OS, never 6379.
 */

/** A Redis started by `startRedis`: one server or a cluster. */
export interface RedisProcess {
  /** The redis-url of it (`redis-cluster://...` for a cluster). */
  url: string;
  /** The client port of each server (one for a single server). */
  ports: number[];
  /** Stops every server (SIGTERM, which writes the AOF when persistent; SIGKILL after a grace). */
  stop(): Promise<void>;
}

/** Options of `startRedis`. */
export interface RedisStartOptions {
  /** A 3-master Redis Cluster instead of one server. */
  cluster?: boolean;
  /** The ports to listen on (from a stopped one's `ports`, to start it again); default free ones. */
  ports?: number[];
  /** Data directory with AOF persistence (and the cluster's node files); default none, in memory. */
  dir?: string;
}

/** Masters of a cluster made by `startRedisCluster`. */
export const CLUSTER_MASTERS = 3;

/** The line telling an operator how to get redis-cli when it is missing. */
export const REDIS_CLI_INSTALL_HINT = 'redis-cli not found on PATH; install it with: sudo apt-get install -y redis-tools';

/** How long a cluster may take to form (or to come back after a restart), in ms. */
const CLUSTER_READY_TIMEOUT_MS = 30_000;

/** Starts one redis-server or a Redis Cluster, as `options.cluster` says. */
export async function startRedis(options: RedisStartOptions = {}): Promise<RedisProcess> {
  if (options.cluster) return startRedisCluster(options);
  const server = await startRedisServer({ port: options.ports?.[0], dir: options.dir });
  return { url: server.url, ports: [server.port], stop: () => server.stop() };
}

/** SIGTERM to a process group, then SIGKILL after `graceMs`; resolves once its leader has exited. */
function stopGroup(started: StartedChild, graceMs = 5_000): Promise<void> {
  const { child } = started;
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, s);
    } catch {
      // the group is gone already
    }
  };
  if (child.exitCode !== null || child.signalCode !== null) {
    signal('SIGKILL');
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => signal('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      signal('SIGKILL');
      resolve();
    });
    signal('SIGTERM');
  });
}

/** Runs `command` in a process group of its own, ended whole when it outlives `timeoutMs`; rejects with its output unless it exits 0. */
function runGroup(command: string, args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${command} ${args.join(' ')} ended with ${signal ?? `exit ${code}`}: ${output.trim().split('\n').slice(-5).join(' | ')}`));
    });
  });
}

/** The cluster bus port a node's file records for the node itself (`<id> host:port@busport myself,...`), so that it rejoins where its peers know it. */
function busPortOf(file: string): number {
  const port = /^\S+ \S+:\d+@(\d+)\S* myself/m.exec(readFileSync(file, 'utf8'))?.[1];
  if (!port) throw new Error(`${file} names no cluster bus port for the node itself`);
  return Number(port);
}

/** Polls until every node says `cluster_state:ok` and knows all slots, or throws after `timeoutMs`. */
async function waitClusterOk(ports: number[], timeoutMs: number): Promise<void> {
  // Loaded here: the `baton` CLI bundle leaves ioredis out, and only a cluster needs a client.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Redis = (require('ioredis') as typeof import('ioredis')).default;
  const clients: RedisClient[] = ports.map(
    (port) => new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 100 }),
  );
  for (const c of clients) c.on('error', () => {});
  const until = Date.now() + timeoutMs;
  let last = '';
  try {
    for (;;) {
      const states = await Promise.all(clients.map((c) => c.cluster('INFO').catch((err: Error) => `error: ${err.message}`)));
      if (states.every((s) => /^cluster_state:ok/m.test(s) && /^cluster_slots_ok:16384/m.test(s))) return;
      last = states.map((s, i) => `${ports[i]}: ${/^cluster_state:\w+/m.exec(s)?.[0] ?? s.split('\n')[0]}`).join(', ');
      if (Date.now() > until) throw new Error(`redis cluster on ports ${ports.join(', ')} not ok after ${timeoutMs} ms (${last})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    for (const c of clients) c.disconnect();
  }
}

/**
 * Starts a Redis Cluster of CLUSTER_MASTERS masters and no replicas on 127.0.0.1 and resolves
 * once every node reports `cluster_state:ok`. With `dir` (persistence) started again on the same
 * `ports` after a stop, the nodes rejoin from their node files with their data instead of
 * forming a new cluster.
 */
export async function startRedisCluster(options: { ports?: number[]; dir?: string } = {}): Promise<RedisProcess> {
  if (!hasRedisServer()) throw new Error(REDIS_INSTALL_HINT);
  if (options.ports) return startClusterOn(options.ports, options);
  return retryWhilePortTaken(async () => startClusterOn(await Promise.all(Array.from({ length: CLUSTER_MASTERS }, () => freePort())), options));
}

/** `startRedisCluster` on the given client ports. */
async function startClusterOn(ports: number[], options: { dir?: string }): Promise<RedisProcess> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'baton-redis-cluster-'));
  mkdirSync(dir, { recursive: true });
  const persistence = options.dir ? ['--appendonly', 'yes'] : ['--save', '', '--appendonly', 'no'];
  const nodeFile = (port: number) => join(dir, `nodes-${port}.conf`);
  const rejoin = ports.every((port) => existsSync(nodeFile(port)));
  const nodes: StartedChild[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => stopGroup(n)));
    if (!options.dir) rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) {
      const nodeDir = join(dir, String(port));
      mkdirSync(nodeDir, { recursive: true });
      const args = [
        ...['--port', String(port), '--bind', '127.0.0.1', '--protected-mode', 'yes'],
        // The cluster bus on a free port of its own: the default (port + 10000) may be taken or out of range.
        ...[
          '--cluster-enabled',
          'yes',
          '--cluster-port',
          String(rejoin ? busPortOf(nodeFile(port)) : await freePort()),
          '--cluster-config-file',
          nodeFile(port),
        ],
        ...['--cluster-node-timeout', '5000', '--dir', nodeDir, ...persistence, '--loglevel', 'notice'],
      ];
      nodes.push(await startChild('redis-server', args, { ready: /Ready to accept connections/, detached: true }));
    }
    if (!rejoin) {
      const addresses = ports.map((p) => `127.0.0.1:${p}`);
      await runGroup('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], CLUSTER_READY_TIMEOUT_MS).catch(
        (err: Error) => {
          throw /ENOENT/.test(err.message) ? new Error(REDIS_CLI_INSTALL_HINT) : err;
        },
      );
    }
    await waitClusterOk(ports, CLUSTER_READY_TIMEOUT_MS);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `redis-cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`, ports, stop };
}
