import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startChild, type StartedChild } from '../lib/child-process';
import { LISTENING_LINE } from '../lib/main';
import { packageRoot } from '../lib/package-root';
import { createCa, issueCertificate, type CertRole, type IssuedFiles } from '../lib/pki';
import { startRedis, type RedisProcess } from '../lib/redis-cluster-server';

/** Options of `DevStack.start`. */
export interface DevStackOptions {
  /** Number of agents; default DEFAULT_DEV_AGENTS. */
  agents?: number;
  /** Puppet environmentpath (`DIR/<environment>/modules/<module>/tasks/...`); default examples/modules. */
  environmentpath?: string;
  /** Log level of the services and agents; default `warn`. */
  logLevel?: string;
  /** Receives each process's stderr lines, prefixed with its name; default: discarded. */
  onStderr?: (name: string, line: string) => void;
  /**
   * Give redis-server a data directory with AOF persistence (as a production Redis has), so
   * `restartRedis` keeps the data; default false (`baton dev` keeps everything in memory).
   */
  persistRedis?: boolean;
  /** A 3-master Redis Cluster on loopback instead of one redis-server (lib/redis-cluster-server.ts); default false. */
  redisCluster?: boolean;
  /**
   * Run every process with mutual TLS: a PKI is made in the state directory (lib/pki.ts) with a
   * service certificate each for metadata, results and scheduler, one agent certificate per
   * agent named by its identity, and operator certificates `alice` and `bob` (see `tls`).
   * Default false: plaintext, every process started with `--insecure`.
   */
  tls?: boolean;
  /** Extra flags per service, after the stack's own (helper "policy": `--policy-file`, `--audit-log`). */
  serviceArgs?: Partial<Record<StackService, string[]>>;
  /**
   * Scheduler replicas on the stack's Redis; default 1. With more than one, replica `i` (1-based)
   * is named `scheduler-<i>` (its replica ids are `scheduler-<i>-<epoch>`), runs in a process
   * group of its own (so that `stopScheduler(i, 'SIGKILL')` kills the whole of it, as a lost
   * machine would), and every agent is given every replica's address.
   */
  schedulers?: number;
}

/** The certificates of a stack started with `tls: true`. */
export interface StackTls {
  /** The PKI directory (lib/pki.ts layout: ca.pem, <role>-<name>.pem/.key). */
  dir: string;
  /** The CA every process trusts. */
  ca: string;
  /** The certificate of operator `name` (`alice` and `bob` exist; any other is issued on first use). */
  operator(name: string): IssuedFiles;
}

/** Operators whose certificates a TLS stack makes at start. */
export const DEV_OPERATORS = ['alice', 'bob'] as const;

/** The three Baton services of a stack. */
export type StackService = 'metadata' | 'results' | 'scheduler';

/**
 * Node options each service runs with, here and in every deploy file (as NODE_OPTIONS there;
 * test/deploy.test.ts holds them to this). The scheduler's young generation may grow to 64 MB
 * semi-spaces instead of V8's 16 MB: a replica holding 100,000 agents keeps a heap of over a
 * gigabyte whose sessions point at objects younger than they are, and every scavenge scans those
 * pointers, so with the default a run spent a large part of its CPU on scavenges of 10-30 ms
 * (docs/decisions.md "The scheduler's young generation").
 */
export const SERVICE_NODE_OPTIONS: Partial<Record<StackService, string[]>> = { scheduler: ['--max-semi-space-size=64'] };

/** How `stopService` ends a service: SIGTERM (a clean drain) or SIGKILL (a crash, an OOM kill). */
export type StopHow = 'SIGTERM' | 'SIGKILL';

/** A running service of the stack and what it takes to start it again on the same port. */
interface ServicePiece {
  args: string[];
  port: number;
  child: StartedChild | undefined;
  /** Its address as it announced it when it started first. */
  address: string;
  /** Its name in `onStderr`. */
  label: string;
  /** Runs in a process group of its own, which SIGKILL ends whole. */
  ownGroup: boolean;
}

/** Agents started by `baton dev` unless `--agents` says otherwise. */
export const DEFAULT_DEV_AGENTS = 3;

/** Addresses of a running stack. */
export interface StackAddresses {
  redis: string;
  metadata: string;
  results: string;
  /** The first scheduler replica. */
  scheduler: string;
  /** Every scheduler replica, in order (`schedulers` option). */
  schedulers: string[];
}

/** The facts and classes of dev agent `i` (1-based): distinct, so filters have something to pick. */
export function devAgentProfile(i: number): { identity: string; facts: Record<string, unknown>; classes: string[] } {
  const roles = ['web', 'db', 'cache'];
  const role = roles[(i - 1) % roles.length];
  return {
    identity: `node${i}`,
    facts: { role, datacenter: i % 2 === 1 ? 'ams1' : 'fra1', dev_index: i },
    classes: ['baton_dev', `role::${role}`],
  };
}

/**
 * A whole Baton installation on this machine, every part a separate process: a private
 * redis-server on a free port, the metadata, results and scheduler services on free ports, and
 * N agents with their own identity, facts, cache and spool directories. Used by `baton dev`
 * and by the end-to-end tests. Children share the terminal's process group on purpose: a Ctrl-C
 * reaches every one of them, so none outlives `baton dev`, and each stops itself cleanly.
 */
export class DevStack {
  private constructor(
    readonly addresses: StackAddresses,
    readonly stateDir: string,
    readonly agentNames: string[],
    private redis: RedisProcess | undefined,
    /** The ports of the stack's Redis servers, to start them again on. */
    private readonly redisPorts: number[],
    private readonly services: Map<StackService, ServicePiece>,
    /** The scheduler replicas; the first is also the services' 'scheduler'. */
    private readonly schedulers: ServicePiece[],
    private readonly agents: Map<string, StartedChild>,
    private readonly options: ResolvedDevStackOptions,
    /** The stack's certificates when started with `tls: true`, else undefined (plaintext). */
    readonly tls: StackTls | undefined,
  ) {}

  /** Starts everything; on any failure stops what was started and rethrows. */
  static async start(options: DevStackOptions = {}): Promise<DevStack> {
    const root = packageRoot();
    const resolved: ResolvedDevStackOptions = {
      agents: options.agents ?? DEFAULT_DEV_AGENTS,
      environmentpath: options.environmentpath ?? join(root, 'examples', 'modules'),
      logLevel: options.logLevel ?? 'warn',
      onStderr: options.onStderr,
      persistRedis: options.persistRedis ?? false,
      redisCluster: options.redisCluster ?? false,
      tls: options.tls ?? false,
      serviceArgs: options.serviceArgs ?? {},
      schedulers: options.schedulers ?? 1,
    };
    const stateDir = mkdtempSync(join(tmpdir(), 'baton-dev-'));
    // mkdtemp makes it 0700: a task run with --run-as (as `nobody`) could not reach its spool
    // below it. Others may pass through, not list it; each agent guards its own spool.
    chmodSync(stateDir, 0o711);
    const started = new Map<StackService, ServicePiece>();
    const replicas: ServicePiece[] = [];
    /** Every service started, for the clean-up when a later one fails. */
    const launched: ServicePiece[] = [];
    let redis: RedisProcess | undefined;
    try {
      const tls = resolved.tls ? makeStackPki(join(stateDir, 'pki')) : undefined;
      redis = await startRedis({ cluster: resolved.redisCluster, dir: resolved.persistRedis ? redisDir(stateDir) : undefined });
      const start = async (piece: StackService, own: string[], label: string = piece, ownGroup = false): Promise<ServicePiece> => {
        const args = [...own, ...tlsArgs(tls?.dir, 'service', piece), ...(resolved.serviceArgs[piece] ?? [])];
        const { address, child } = await startPiece(root, piece, '127.0.0.1:0', args, resolved, { label, ownGroup });
        const started: ServicePiece = { args, address, port: portOf(address), child, label, ownGroup };
        launched.push(started);
        return started;
      };
      const [metadata, results] = await allStarted([
        start('metadata', ['--environmentpath', resolved.environmentpath]),
        start('results', ['--redis-url', redis.url]),
      ]);
      started.set('metadata', metadata);
      started.set('results', results);
      const schedulerArgs = schedulerConnections(redis.url, metadata.address, results.address);
      const several = resolved.schedulers > 1;
      replicas.push(
        ...(await allStarted(
          Array.from({ length: resolved.schedulers }, (_, k) => {
            const label = several ? `scheduler-${k + 1}` : 'scheduler';
            return start('scheduler', several ? [...schedulerArgs, '--replica-name', label] : schedulerArgs, label, several);
          }),
        )),
      );
      started.set('scheduler', replicas[0]);
      const addresses = {
        redis: redis.url,
        metadata: metadata.address,
        results: results.address,
        scheduler: replicas[0].address,
        schedulers: replicas.map((r) => r.address),
      };
      const stack = new DevStack(addresses, stateDir, [], redis, redis.ports, started, replicas, new Map(), resolved, tls);
      try {
        await Promise.all(Array.from({ length: resolved.agents }, (_, k) => stack.startAgent(k + 1)));
      } catch (err) {
        await stack.stop();
        throw err;
      }
      return stack;
    } catch (err) {
      await Promise.all(launched.flatMap((s) => (s.child ? [s.child.stop()] : [])));
      await redis?.stop();
      rmSync(stateDir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Starts dev agent `i` (again, after `stopAgent`): same identity, cache and spool. */
  async startAgent(i: number): Promise<void> {
    const profile = devAgentProfile(i);
    const dir = join(this.stateDir, profile.identity);
    mkdirSync(dir, { recursive: true });
    const factsFile = join(dir, 'facts.json');
    writeFileSync(factsFile, JSON.stringify(profile.facts));
    const agent = await startChild(
      process.execPath,
      [
        join(packageRoot(), 'dist', 'agent', 'main.js'),
        '--identity',
        profile.identity,
        '--scheduler-address',
        this.addresses.schedulers.join(','),
        '--cache-dir',
        join(dir, 'cache'),
        '--spool-dir',
        join(dir, 'spool'),
        '--facts-file',
        factsFile,
        '--classes',
        profile.classes.join(','),
        '--log-level',
        this.options.logLevel,
        ...tlsArgs(this.tls?.dir, 'agent', profile.identity),
      ],
      { ready: /connected to/, onStderr: (line) => this.options.onStderr?.(profile.identity, line) },
    );
    this.agents.set(profile.identity, agent);
    if (!this.agentNames.includes(profile.identity)) {
      this.agentNames.push(profile.identity);
      this.agentNames.sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
    }
  }

  /** Stops one agent process (SIGTERM); its tasks and spool stay. */
  async stopAgent(identity: string): Promise<void> {
    await this.agents.get(identity)?.stop();
    this.agents.delete(identity);
  }

  /**
   * Kills one agent process with SIGKILL (no clean shutdown), as a crash or an OOM kill would;
   * its tasks, running under their own wrappers, go on. Resolves once the process is gone.
   */
  async killAgent(identity: string): Promise<void> {
    const agent = this.agents.get(identity);
    this.agents.delete(identity);
    if (agent) await killChild(agent);
  }

  /** The pid of dev agent `identity`'s process, undefined while it is stopped. */
  agentPid(identity: string): number | undefined {
    return this.agents.get(identity)?.child.pid;
  }

  /** The state directory of dev agent `identity` (its cache/ and spool/ are below it). */
  agentDir(identity: string): string {
    return join(this.stateDir, identity);
  }

  /**
   * Stops one service: SIGTERM (it drains and exits) or SIGKILL (no clean shutdown, as a crash
   * would). Resolves once the process is gone; `startService` brings it back on the same port.
   */
  async stopService(name: StackService, how: StopHow = 'SIGTERM'): Promise<void> {
    await stopPiece(this.services.get(name), how);
  }

  /**
   * Starts a service stopped by `stopService` again, on the port it had and with the same
   * arguments, so every client (agents, the other services, the CLI) finds it where it was.
   */
  async startService(name: StackService): Promise<void> {
    await this.startPieceAgain(name, this.services.get(name));
  }

  /**
   * Stops scheduler replica `i` (1-based, `schedulers` option) as `stopService` does; with
   * several replicas SIGKILL ends its whole process group.
   */
  async stopScheduler(i: number, how: StopHow = 'SIGTERM'): Promise<void> {
    await stopPiece(this.replica(i), how);
  }

  /** Starts scheduler replica `i` again after `stopScheduler`, on its port (a new replica id: the next epoch). */
  async startScheduler(i: number): Promise<void> {
    await this.startPieceAgain('scheduler', this.replica(i));
  }

  /**
   * Starts one more scheduler replica on the stack's Redis and services, with `args` besides
   * their addresses: not one of the stack's replicas (`stopScheduler` and `stop` know nothing of
   * it), so the caller stops it. `label` names its stderr lines for `onStderr`; with `ownGroup` it
   * runs in a process group of its own.
   */
  async startExtraScheduler(label: string, args: string[] = [], ownGroup = false): Promise<{ address: string; child: StartedChild }> {
    const { redis, metadata, results } = this.addresses;
    const all = [...schedulerConnections(redis, metadata, results), ...tlsArgs(this.tls?.dir, 'service', 'scheduler'), ...args];
    return startPiece(packageRoot(), 'scheduler', '127.0.0.1:0', all, this.options, { label, ownGroup });
  }

  /** The pid of scheduler replica `i` (1-based), undefined while it is stopped. */
  schedulerPid(i: number): number | undefined {
    return this.replica(i).child?.child.pid;
  }

  private replica(i: number): ServicePiece {
    const piece = this.schedulers[i - 1];
    if (!piece) throw new Error(`scheduler replica ${i} does not exist; the stack has ${this.schedulers.length}`);
    return piece;
  }

  private async startPieceAgain(name: StackService, piece: ServicePiece | undefined): Promise<void> {
    if (!piece || piece.child) return;
    const { child } = await startPiece(packageRoot(), name, `127.0.0.1:${piece.port}`, piece.args, this.options, piece);
    piece.child = child;
  }

  /** `stopService` then `startService`: a restart on the same port. */
  async restartService(name: StackService, how: StopHow = 'SIGTERM'): Promise<void> {
    await this.stopService(name, how);
    await this.startService(name);
  }

  /**
   * Stops redis-server with SIGTERM (with `persistRedis` it writes its AOF first, as a
   * production Redis does). `startRedis` brings it back on the same port with the same data.
   */
  async stopRedis(): Promise<void> {
    const redis = this.redis;
    this.redis = undefined;
    await redis?.stop();
  }

  /**
   * Starts redis-server again after `stopRedis`, on the port of the stack's Redis URL and with
   * the same data directory. Needs `persistRedis`: without it every key would be gone, which
   * is a different fault.
   */
  async startRedis(): Promise<void> {
    if (!this.options.persistRedis) throw new Error('startRedis needs a stack started with persistRedis: true');
    if (this.redis) return;
    this.redis = await startRedis({ cluster: this.options.redisCluster, ports: this.redisPorts, dir: redisDir(this.stateDir) });
  }

  /** `stopRedis` then `startRedis`: a Redis restart that keeps its data. */
  async restartRedis(): Promise<void> {
    await this.stopRedis();
    await this.startRedis();
  }

  /** Stops every process it started, agents first, and removes its state directory. */
  async stop(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.stop()));
    this.agents.clear();
    await Promise.all(this.schedulers.map((piece) => stopPiece(piece, 'SIGTERM')));
    for (const name of ['results', 'metadata'] as const) await this.stopService(name);
    await this.redis?.stop();
    this.redis = undefined;
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}

/** DevStackOptions with every default filled in. */
type ResolvedDevStackOptions = Required<Omit<DevStackOptions, 'onStderr'>> & Pick<DevStackOptions, 'onStderr'>;

/** A stack's PKI: a CA, the three service certificates and the DEV_OPERATORS' certificates; agents get theirs in tlsArgs. */
function makeStackPki(dir: string): StackTls {
  const { ca } = createCa(dir);
  for (const service of ['metadata', 'results', 'scheduler'] as const) issueCertificate(dir, 'service', service);
  for (const name of DEV_OPERATORS) issueCertificate(dir, 'operator', name);
  return { dir, ca, operator: (name) => certificateOf(dir, 'operator', name) };
}

/** The certificate of `role` `name` in `dir`, issued when it does not exist yet. */
function certificateOf(dir: string, role: CertRole, name: string): IssuedFiles {
  const files = { cert: join(dir, `${role}-${name}.pem`), key: join(dir, `${role}-${name}.key`), ca: join(dir, 'ca.pem') };
  return existsSync(files.cert) && existsSync(files.key) ? files : issueCertificate(dir, role, name);
}

/** A scheduler's flags naming the Redis and the services it works with. */
function schedulerConnections(redisUrl: string, metadata: string, results: string): string[] {
  return ['--redis-url', redisUrl, '--metadata-address', metadata, '--results-address', results];
}

/** The TLS flags of a process: its own certificate from the stack's PKI, or `--insecure` without one. */
function tlsArgs(pkiDir: string | undefined, role: CertRole, name: string): string[] {
  if (!pkiDir) return ['--insecure'];
  const files = certificateOf(pkiDir, role, name);
  return ['--tls-cert', files.cert, '--tls-key', files.key, '--tls-ca', files.ca];
}

/** Where a persistent stack's redis-server keeps its AOF. */
function redisDir(stateDir: string): string {
  const dir = join(stateDir, 'redis');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** The port of a host:port address. */
function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

/** SIGKILL (of its whole process group with `group`), resolving once the process has exited. */
function killChild(started: StartedChild, group = false): Promise<void> {
  const { child } = started;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    if (group && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    else child.kill('SIGKILL');
  });
}

/** Waits for every start to settle (none is left starting unseen), then rejects with the first failure, if any. */
async function allStarted<T>(starts: Array<Promise<T>>): Promise<T[]> {
  const settled = await Promise.allSettled(starts);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}

/** Stops a service piece (see `DevStack.stopService`); nothing when it is not running. */
async function stopPiece(piece: ServicePiece | undefined, how: StopHow): Promise<void> {
  const child = piece?.child;
  if (!piece || !child) return;
  piece.child = undefined;
  if (how === 'SIGTERM') await child.stop();
  else await killChild(child, piece.ownGroup);
}

async function startPiece(
  root: string,
  piece: StackService,
  listen: string,
  args: string[],
  options: { logLevel: string; onStderr?: (name: string, line: string) => void },
  how: { label: string; ownGroup: boolean } = { label: piece, ownGroup: false },
): Promise<{ address: string; child: StartedChild }> {
  const child = await startChild(
    process.execPath,
    [...(SERVICE_NODE_OPTIONS[piece] ?? []), join(root, 'dist', 'services', piece, 'main.js'), '--listen', listen, '--log-level', options.logLevel, ...args],
    {
      ready: LISTENING_LINE,
      detached: how.ownGroup,
      onStderr: (line) => options.onStderr?.(how.label, line),
    },
  );
  return { address: LISTENING_LINE.exec(child.readyLine)![1], child };
}
