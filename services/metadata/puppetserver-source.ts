import type { Environment, ReadTaskFileResponse } from '../../gen/baton/v1/metadata_service';
import type { Implementation, Task, TaskError, TaskFile } from '../../gen/baton/v1/task';
import { FailedPreconditionError, NotFoundError, UnavailableError } from '../../lib/errors';
import { ENVIRONMENT_NAME, TASK_NAME, splitTaskName } from '../../lib/names';
import { SHA256_HEX, taskFilePathProblem } from '../../lib/task-file-path';
import { assembleTask, inputMethodOf } from './assemble-task';
import type { PuppetServerClient, PuppetServerResponse } from './puppetserver-client';
import { bufferChunks } from './task-file-chunks';
import { TaskLoadError } from './task-load-error';
import { validateMetadata } from './task-metadata';
import { taskLoadFailedMessage, type TaskListing, type TaskSource } from './task-source';
import { mapLimit } from '../../lib/map-limit';

/**
 * Tasks answered from an existing Puppet Server's `/puppet/v3/tasks` API (docs/task-format.md §3;
 * docs/choria-compat.md §1.1), for sites that already deploy code there.
 *
 * - ListTasks is one `GET /puppet/v3/tasks?environment=`. Puppet Server ≥ 6 lists
 *   `description` and `private`; an older one lists names only, and then each task's
 *   description needs one detail request (that is its API), made 8 at a time.
 * - GetTask is `GET /puppet/v3/tasks/<module>/<task>?environment=` (`init` for a module's
 *   init task). Its `files[].filename` becomes Baton's path: a bare basename (an
 *   implementation) is `<module>/tasks/<basename>`, an extra file is already
 *   `<module>/<mount>/<path>`.
 * - ReadTaskFile fetches the file's `uri.path` with its `uri.params`, whole (up to
 *   MAX_PUPPETSERVER_BODY_BYTES), hashes what arrived and streams it under that sha256. Only
 *   paths some task detail of the environment listed are fetched, as with a local modulepath.
 * - Caching: listings and details are kept for the cache TTL (DEFAULT_PUPPETSERVER_CACHE_TTL_MS,
 *   5 s) keyed by environment and task name, so code deployed to Puppet Server is seen at
 *   most one TTL later; failures are not cached.
 * - Errors: Puppet Server's 404 texts become NOT_FOUND naming the environment or task, its
 *   500 `{kind, msg, details}` for a broken task becomes FAILED_PRECONDITION with that kind,
 *   anything else (refused connection, other statuses, bodies of the wrong shape) UNAVAILABLE.
 *   Puppet Server omits broken tasks from its listing (docs/task-format.md §3.2), so they are not listed here.
 */

/** How long a Puppet Server listing or task detail is reused, in ms. */
export const DEFAULT_PUPPETSERVER_CACHE_TTL_MS = 5_000;

/** Detail requests in flight at once when a listing lacks descriptions. */
export const DETAIL_CONCURRENCY = 8;

/** Most file locations remembered over all environments before the memory is cleared. */
const MAX_REMEMBERED_FILES = 100_000;

/** Where Puppet Server serves one task file. */
interface RemoteFile {
  uriPath: string;
  params: Record<string, string>;
}

/** A task detail: the task, or why it fails to load. */
type Detail = { task: Task; files: Map<string, RemoteFile> } | { error: TaskError };

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The first line of a text body, for messages. */
function firstLine(body: Buffer): string {
  return body.toString('utf8').split('\n')[0].trim().slice(0, 300);
}

/** Options of PuppetServerSource. */
export interface PuppetServerSourceOptions {
  /** Default DEFAULT_PUPPETSERVER_CACHE_TTL_MS; 0 disables caching. */
  cacheTtlMs?: number;
}

/** A TaskSource over one Puppet Server. */
export class PuppetServerSource implements TaskSource {
  private readonly ttlMs: number;
  private readonly cache = new Map<string, { expires: number; value: Promise<unknown> }>();
  /** `<env>\0<path>` → where to fetch it, learned from task details. */
  private readonly files = new Map<string, RemoteFile>();

  constructor(
    private readonly client: PuppetServerClient,
    options: PuppetServerSourceOptions = {},
  ) {
    this.ttlMs = options.cacheTtlMs ?? DEFAULT_PUPPETSERVER_CACHE_TTL_MS;
  }

  /** `load()` shared by every caller for the TTL; a rejection is forgotten at once. */
  private cached<T>(key: string, load: () => Promise<T>): Promise<T> {
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && hit.expires > now) return hit.value as Promise<T>;
    if (this.cache.size > 10_000) for (const [k, v] of this.cache) if (v.expires <= now) this.cache.delete(k);
    const entry = { expires: now + this.ttlMs, value: load() as Promise<unknown> };
    this.cache.set(key, entry);
    entry.value.catch(() => {
      if (this.cache.get(key) === entry) this.cache.delete(key);
    });
    return entry.value as Promise<T>;
  }

  private unexpected(what: string, res: PuppetServerResponse): UnavailableError {
    return new UnavailableError(`Puppet Server ${this.client.base} answered ${what} with HTTP ${res.status}: ${firstLine(res.body) || '(empty body)'}`);
  }

  private json(what: string, res: PuppetServerResponse): unknown {
    try {
      return JSON.parse(res.body.toString('utf8')) as unknown;
    } catch {
      throw new UnavailableError(`Puppet Server ${this.client.base} answered ${what} with a body that is not JSON: ${firstLine(res.body)}`);
    }
  }

  private environmentNotFound(environment: string, res: PuppetServerResponse): NotFoundError {
    return new NotFoundError('ENVIRONMENT_NOT_FOUND', `environment '${environment}' not found on Puppet Server ${this.client.base} (${firstLine(res.body)})`, {
      environment,
    });
  }

  async listEnvironments(): Promise<Environment[]> {
    const what = 'GET /puppet/v3/environments';
    const names = await this.cached('environments', async () => {
      const res = await this.client.get('/puppet/v3/environments', {}, 'application/json');
      if (res.status !== 200) throw this.unexpected(what, res);
      const doc = this.json(what, res);
      if (!isObject(doc) || !isObject(doc.environments))
        throw new UnavailableError(`Puppet Server ${this.client.base} answered ${what} without an 'environments' object`);
      return Object.keys(doc.environments)
        .filter((n) => ENVIRONMENT_NAME.test(n))
        .sort();
    });
    return mapLimit(names, DETAIL_CONCURRENCY, async (name) => ({ name, taskCount: (await this.listTasks(name)).length }));
  }

  listTasks(environment: string): Promise<readonly TaskListing[]> {
    return this.cached(`list\0${environment}`, async () => {
      const what = `GET /puppet/v3/tasks?environment=${environment}`;
      const res = await this.client.get('/puppet/v3/tasks', { environment }, 'application/json');
      if (res.status === 404) throw this.environmentNotFound(environment, res);
      if (res.status !== 200) throw this.unexpected(what, res);
      const doc = this.json(what, res);
      if (!Array.isArray(doc)) throw new UnavailableError(`Puppet Server ${this.client.base} answered ${what} with something other than a JSON array`);
      const entries = doc.filter((e): e is Json => isObject(e) && typeof e.name === 'string' && TASK_NAME.test(e.name) && !e.name.endsWith('::init'));
      const listings = await mapLimit(entries, DETAIL_CONCURRENCY, async (e): Promise<TaskListing | undefined> => {
        const name = e.name as string;
        if (typeof e.description === 'string') return { name, description: e.description, private: e.private === true };
        // An older Puppet Server lists names only: the description is in the detail.
        const detail = await this.detail(environment, name).catch((err: unknown) => {
          if (err instanceof NotFoundError && err.reason === 'TASK_NOT_FOUND') return undefined; // removed since the listing
          throw err;
        });
        if (!detail) return undefined;
        if ('error' in detail) return { name, description: '', private: e.private === true, error: detail.error };
        return { name, description: detail.task.description, private: detail.task.private };
      });
      return listings.filter((t): t is TaskListing => t !== undefined).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    });
  }

  async getTask(environment: string, name: string): Promise<Task> {
    const detail = await this.detail(environment, name);
    if ('error' in detail) {
      throw new FailedPreconditionError('TASK_LOAD_FAILED', taskLoadFailedMessage(name, environment, detail.error), {
        task: name,
        environment,
        kind: detail.error.kind,
      });
    }
    return detail.task;
  }

  /** The detail of task `name`, cached; NOT_FOUND and UNAVAILABLE are thrown, a broken task is returned. */
  private detail(environment: string, name: string): Promise<Detail> {
    return this.cached(`task\0${environment}\0${name}`, async () => {
      const { module, task } = splitTaskName(name);
      const path = `/puppet/v3/tasks/${encodeURIComponent(module)}/${encodeURIComponent(task)}`;
      const what = `GET ${path}?environment=${environment}`;
      const res = await this.client.get(path, { environment }, 'application/json');
      if (res.status === 404) {
        if (/could not find environment/i.test(firstLine(res.body))) throw this.environmentNotFound(environment, res);
        throw new NotFoundError(
          'TASK_NOT_FOUND',
          `task '${name}' not found in environment '${environment}' on Puppet Server ${this.client.base} (${firstLine(res.body)})`,
          {
            task: name,
            environment,
            module,
            name: task,
          },
        );
      }
      if (res.status === 500 && /json/.test(res.contentType)) {
        // A task that exists but fails to load (docs/task-format.md §3.3): `{kind, msg, details}`.
        const doc = this.json(what, res);
        if (isObject(doc) && typeof doc.kind === 'string' && doc.kind.startsWith('puppet.task')) {
          return { error: { kind: doc.kind, msg: typeof doc.msg === 'string' ? doc.msg : '', details: isObject(doc.details) ? doc.details : {} } };
        }
      }
      if (res.status !== 200) throw this.unexpected(what, res);
      try {
        const detail = this.taskOfDetail(environment, name, module, this.json(what, res));
        if (this.files.size + detail.files.size > MAX_REMEMBERED_FILES) this.files.clear();
        for (const [p, f] of detail.files) this.files.set(`${environment}\0${p}`, f);
        return detail;
      } catch (err) {
        if (err instanceof TaskLoadError) return { error: err.toTaskError() };
        throw err;
      }
    });
  }

  /** A TaskDetails body (docs/task-format.md §3.3) as a Task; a body Baton cannot use is a TaskLoadError. */
  private taskOfDetail(environment: string, name: string, module: string, doc: unknown): { task: Task; files: Map<string, RemoteFile> } {
    const what = `task ${name}`;
    const bad = (why: string) =>
      new TaskLoadError('puppet.tasks/invalid-metadata', `${what}: Puppet Server ${this.client.base} sent a detail Baton cannot use: ${why}`);
    if (!isObject(doc)) throw bad('it is not a JSON object');
    const metadataDoc = doc.metadata ?? {};
    const metadata = validateMetadata(metadataDoc, what);
    if (doc.files !== undefined && !Array.isArray(doc.files)) throw bad("'files' is not an array");
    const taskFiles: TaskFile[] = [];
    const remote = new Map<string, RemoteFile>();
    for (const [i, f] of ((doc.files ?? []) as unknown[]).entries()) {
      const uri = isObject(f) ? f.uri : undefined;
      if (!isObject(f) || typeof f.filename !== 'string' || !isObject(uri) || typeof uri.path !== 'string' || !uri.path.startsWith('/')) {
        throw bad(`files[${i}] lacks a filename or a uri.path`);
      }
      if (typeof f.sha256 !== 'string' || !SHA256_HEX.test(f.sha256)) throw bad(`files[${i}].sha256 is not 64 lowercase hex characters`);
      if (!Number.isSafeInteger(f.size_bytes) || (f.size_bytes as number) < 0) throw bad(`files[${i}].size_bytes is not a byte count`);
      const path = f.filename.includes('/') ? f.filename : `${module}/tasks/${f.filename}`;
      const problem = taskFilePathProblem(path);
      if (problem) throw new TaskLoadError('puppet.tasks/invalid-file', `${what}: file path '${path}' ${problem}`, { file: path });
      const params: Record<string, string> = {};
      for (const [k, v] of Object.entries(isObject(uri.params) ? uri.params : {})) if (typeof v === 'string') params[k] = v;
      if (!remote.has(path)) taskFiles.push({ path, sha256: f.sha256, sizeBytes: f.size_bytes as number });
      remote.set(path, { uriPath: uri.path, params: { environment, ...params } });
    }
    // An implementation's own files: a directory entry (trailing /) is every listed file under it.
    const expand = (entry: string) => (entry.endsWith('/') ? taskFiles.map((t) => t.path).filter((p) => p.startsWith(entry)) : [entry]);
    const implementations: Implementation[] = (metadata.implementations ?? []).map((impl) => ({
      path: `${module}/tasks/${impl.name}`,
      requirements: impl.requirements,
      inputMethod: inputMethodOf(impl.inputMethod),
      files: [...new Set(impl.files.flatMap(expand))],
    }));
    const task = assembleTask({ environment, name, metadata, rawMetadata: JSON.stringify(metadataDoc), files: taskFiles, implementations });
    return { task, files: remote };
  }

  async *readTaskFile(environment: string, path: string, expectedSha256: string): AsyncIterable<ReadTaskFileResponse> {
    let remote = this.files.get(`${environment}\0${path}`);
    if (!remote) {
      // Not learned yet (say, after a restart): learn every task's files of the environment.
      const listings = await this.listTasks(environment);
      await mapLimit(listings, DETAIL_CONCURRENCY, (t) => this.detail(environment, t.name).catch(() => undefined));
      remote = this.files.get(`${environment}\0${path}`);
    }
    if (!remote) {
      throw new NotFoundError(
        'TASK_FILE_NOT_FOUND',
        `'${path}' is not a file of any task in environment '${environment}' on Puppet Server ${this.client.base}`,
        { path, environment },
      );
    }
    const res = await this.client.get(remote.uriPath, remote.params, 'application/octet-stream');
    if (res.status === 404) {
      throw new NotFoundError(
        'TASK_FILE_NOT_FOUND',
        `task file '${path}' is gone from Puppet Server ${this.client.base} (${firstLine(res.body)}); fetch the task again`,
        { path, environment },
      );
    }
    if (res.status !== 200) throw this.unexpected(`GET ${remote.uriPath}`, res);
    yield* bufferChunks(res.body, path, expectedSha256);
  }
}
