import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startChild, type StartedChild } from '../lib/child-process';
import { LISTENING_LINE } from '../lib/main';
import { packageRoot } from '../lib/package-root';
import { startRedisServer, type RedisServerProcess } from '../lib/redis-server';

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
}

/** Agents started by `baton dev` unless `--agents` says otherwise. */
export const DEFAULT_DEV_AGENTS = 3;

/** Addresses of a running stack. */
export interface StackAddresses {
  redis: string;
  metadata: string;
  results: string;
  scheduler: string;
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
    private readonly redis: RedisServerProcess,
    private readonly services: StartedChild[],
    private readonly agents: Map<string, StartedChild>,
    private readonly options: Required<Omit<DevStackOptions, 'onStderr'>> & Pick<DevStackOptions, 'onStderr'>,
  ) {}

  /** Starts everything; on any failure stops what was started and rethrows. */
  static async start(options: DevStackOptions = {}): Promise<DevStack> {
    const root = packageRoot();
    const resolved = {
      agents: options.agents ?? DEFAULT_DEV_AGENTS,
      environmentpath: options.environmentpath ?? join(root, 'examples', 'modules'),
      logLevel: options.logLevel ?? 'warn',
      onStderr: options.onStderr,
    };
    const stateDir = mkdtempSync(join(tmpdir(), 'baton-dev-'));
    const started: StartedChild[] = [];
    let redis: RedisServerProcess | undefined;
    try {
      redis = await startRedisServer();
      const metadata = await startPiece(root, 'metadata', ['--environmentpath', resolved.environmentpath], resolved);
      started.push(metadata.child);
      const results = await startPiece(root, 'results', ['--redis-url', redis.url], resolved);
      started.push(results.child);
      const scheduler = await startPiece(
        root,
        'scheduler',
        ['--redis-url', redis.url, '--metadata-address', metadata.address, '--results-address', results.address],
        resolved,
      );
      started.push(scheduler.child);
      const addresses = { redis: redis.url, metadata: metadata.address, results: results.address, scheduler: scheduler.address };
      const stack = new DevStack(addresses, stateDir, [], redis, started, new Map(), resolved);
      try {
        await Promise.all(Array.from({ length: resolved.agents }, (_, k) => stack.startAgent(k + 1)));
      } catch (err) {
        await stack.stop();
        throw err;
      }
      return stack;
    } catch (err) {
      await Promise.all(started.map((c) => c.stop()));
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
        '--identity', profile.identity,
        '--scheduler-address', this.addresses.scheduler,
        '--cache-dir', join(dir, 'cache'),
        '--spool-dir', join(dir, 'spool'),
        '--facts-file', factsFile,
        '--classes', profile.classes.join(','),
        '--log-level', this.options.logLevel,
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
    if (!agent || agent.child.exitCode !== null || agent.child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      agent.child.once('exit', () => resolve());
      agent.child.kill('SIGKILL');
    });
  }

  /** The state directory of dev agent `identity` (its cache/ and spool/ are below it). */
  agentDir(identity: string): string {
    return join(this.stateDir, identity);
  }

  /** Stops every process it started, agents first, and removes its state directory. */
  async stop(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.stop()));
    this.agents.clear();
    for (const s of [...this.services].reverse()) await s.stop();
    await this.redis.stop();
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}

async function startPiece(
  root: string,
  piece: string,
  args: string[],
  options: { logLevel: string; onStderr?: (name: string, line: string) => void },
): Promise<{ address: string; child: StartedChild }> {
  const child = await startChild(process.execPath, [join(root, 'dist', 'services', piece, 'main.js'), '--listen', '127.0.0.1:0', '--log-level', options.logLevel, ...args], {
    ready: LISTENING_LINE,
    onStderr: (line) => options.onStderr?.(piece, line),
  });
  return { address: LISTENING_LINE.exec(child.readyLine)![1], child };
}
