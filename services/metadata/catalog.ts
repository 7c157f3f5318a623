import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { UnavailableError } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import { ENVIRONMENT_NAME } from '../../lib/names';
import { FileDigests } from './file-digests';
import { scanEnvironment, type ScannedEnvironment } from './module-scanner';

/** Least time between two scans of the same environment (and of the environment list), in ms. */
export const DEFAULT_RESCAN_INTERVAL_MS = 1_000;

/** Options of `Catalog`. */
export interface CatalogOptions {
  /** Directory holding `<environment>/modules/<module>/tasks/`. */
  environmentPath: string;
  /** Least time between two scans of one environment in ms; default DEFAULT_RESCAN_INTERVAL_MS; 0 scans on every request. */
  rescanIntervalMs?: number;
  /** Receives a warning for each task that starts failing to load; default none. */
  log?: Logger;
  /** Directories `$basemodulepath` names in an environment's modulepath; default none. */
  basemodulepath?: readonly string[];
}

/** One environment's latest scan and the rescan under way, if any. */
interface EnvironmentEntry {
  /** The last finished scan; undefined until the first one finishes. */
  latest?: ScannedEnvironment;
  /** When `latest` finished (ms since the epoch). */
  finishedAt?: number;
  /** The scan under way. */
  pending?: Promise<ScannedEnvironment>;
  digests: FileDigests;
  /** `kind: msg` of each broken task and each module problem at the last scan, to log only what changed. */
  broken: Map<string, string>;
}

/**
 * The task catalog: the scanned environments of one environmentpath.
 *
 * Freshness: scanning is on demand, stale-while-revalidate. A request that finds an
 * environment's last scan older than the rescan interval (1 s by default) is answered from
 * that scan at once and starts a rescan in the background; concurrent requests share one
 * scan, and only the very first request of an environment waits for one. So an operator who
 * edits a module sees the change a second or so later (once the rescan the next request
 * started has finished), with no watcher or restart; an idle service does no work at all; and
 * no request pays for a rescan, whose cost grows with the tasks (bench/metadata-bench.ts measures it).
 * A rescan reuses the digest of every file whose inode, size, mtime and ctime did not change,
 * so it costs directory listings, stats and reading the metadata files.
 */
export class Catalog {
  private readonly environmentPath: string;
  private readonly intervalMs: number;
  private readonly log?: Logger;
  private readonly basemodulepath: readonly string[];
  private names?: { list: Promise<string[]>; finishedAt?: number };
  private readonly entries = new Map<string, EnvironmentEntry>();

  constructor(options: CatalogOptions) {
    this.environmentPath = options.environmentPath;
    this.intervalMs = options.rescanIntervalMs ?? DEFAULT_RESCAN_INTERVAL_MS;
    this.log = options.log;
    this.basemodulepath = options.basemodulepath ?? [];
  }

  private fresh(finishedAt: number | undefined): boolean {
    return finishedAt === undefined || Date.now() - finishedAt < this.intervalMs;
  }

  /** The environment names, sorted: subdirectories of the environmentpath named like `^[a-z][a-z0-9_]*$`. */
  async environmentNames(): Promise<string[]> {
    if (!this.names || !this.fresh(this.names.finishedAt)) {
      const names: { list: Promise<string[]>; finishedAt?: number } = { list: this.listNames() };
      this.names = names;
      names.list.then(
        () => (names.finishedAt = Date.now()),
        () => {
          if (this.names === names) this.names = undefined; // retry on the next request
        },
      );
    }
    return this.names.list;
  }

  private async listNames(): Promise<string[]> {
    const entries = await readdir(this.environmentPath, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      this.log?.error({ err }, 'cannot read the environmentpath');
      throw new UnavailableError(`the catalog cannot read its environmentpath (${err.code ?? err.message})`);
    });
    const names: string[] = [];
    for (const e of entries) {
      if (!ENVIRONMENT_NAME.test(e.name)) continue;
      if (e.isDirectory() || (e.isSymbolicLink() && (await stat(join(this.environmentPath, e.name)).catch(() => undefined))?.isDirectory())) names.push(e.name);
    }
    return names.sort();
  }

  /** The environment `name` as of at most one rescan interval ago, or undefined when there is none. */
  async environment(name: string): Promise<ScannedEnvironment | undefined> {
    if (!(await this.environmentNames()).includes(name)) {
      this.entries.delete(name);
      return undefined;
    }
    let entry = this.entries.get(name);
    if (!entry) {
      entry = { digests: new FileDigests(), broken: new Map<string, string>() };
      this.entries.set(name, entry);
    }
    if (!entry.pending && (!entry.latest || !this.fresh(entry.finishedAt))) this.rescan(name, entry);
    return entry.latest ?? entry.pending;
  }

  /** Starts a scan of `name` into `entry`; a scan that fails keeps the previous one. */
  private rescan(name: string, entry: EnvironmentEntry): void {
    const pending = scanEnvironment(name, join(this.environmentPath, name), { digests: entry.digests, basemodulepath: this.basemodulepath });
    entry.pending = pending;
    pending.then(
      (env) => {
        entry.latest = env;
        entry.finishedAt = Date.now();
        entry.pending = undefined;
        this.logChanges(env, entry.broken);
      },
      (err: unknown) => {
        entry.pending = undefined;
        this.log?.error({ err, environment: name }, `scanning environment ${name} failed`);
        if (!entry.latest && this.entries.get(name) === entry) this.entries.delete(name);
      },
    );
  }

  /** Every environment, sorted by name. */
  async environments(): Promise<ScannedEnvironment[]> {
    const names = await this.environmentNames();
    const envs = await Promise.all(names.map((n) => this.environment(n)));
    return envs.filter((e): e is ScannedEnvironment => e !== undefined);
  }

  /** Logs tasks that started failing (or fail differently) since the last scan, and unreadable modules. */
  private logChanges(env: ScannedEnvironment, broken: Map<string, string>): void {
    const now = new Map<string, string>();
    for (const t of env.tasks) {
      if (!t.error) continue;
      const line = `${t.error.kind}: ${t.error.msg}`;
      now.set(t.name, line);
      if (broken.get(t.name) !== line)
        this.log?.warn({ environment: env.name, task: t.name, kind: t.error.kind }, `task ${t.name} fails to load: ${t.error.msg}`);
    }
    for (const p of env.problems) {
      now.set(`problem:${p}`, p);
      if (!broken.has(`problem:${p}`)) this.log?.warn({ environment: env.name }, p);
    }
    broken.clear();
    for (const [k, v] of now) broken.set(k, v);
  }
}
