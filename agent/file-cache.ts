import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, open, readdir, readFile, rename, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { MetadataServiceClient, ReadTaskFileResponse } from '../gen/baton/v1/metadata_service';
import type { TaskFile } from '../gen/baton/v1/task';
import { isServiceError } from '../lib/errors';
import { SHA256_HEX, taskFilePathProblem } from '../lib/task-file-path';
import { metrics } from '../lib/metrics';

/**
 * The agent's content-addressed file cache: one file per content hash, `<cache>/<sha256>`,
 * verified (size and sha256) right after download and again before every run (DESIGN.md "The
 * agent on disk"). Choria verified only before running (docs/choria-compat.md §7); a corrupt
 * download here fails the download itself, naming the file, and leaves nothing in the cache.
 *
 * Only names matching SHA256_HEX are ever created in the cache. A download streams into a temp
 * file with a unique name (`.download-<sha256>-<pid>-<random>`) and is renamed into place only
 * after it verified, so two downloads of the same file (concurrent commands, or two agents
 * sharing a cache) never write to the same file: each renames a complete, verified copy of the
 * same bytes, and rename(2) replaces atomically. Within one process concurrent requests for the
 * same hash also share one download.
 */

/** Deadline of one file download in ms. */
export const DEFAULT_DOWNLOAD_DEADLINE_MS = 5 * 60_000;

/** Mode of cache files: readable by the agent's group, never executable (the spool copy is). */
export const CACHE_FILE_MODE = 0o640;

/** A task file could not be fetched or did not verify; the message names the file. */
export class DownloadError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`task file ${path}: ${message}`);
    this.name = 'DownloadError';
  }
}

/**
 * Least time between two touches of one cache file, in ms. Retention counts in days (a
 * removed file is downloaded again before its next run anyway), and a utimes per run is a
 * syscall on the path of every task.
 */
export const TOUCH_INTERVAL_MS = 60_000;

/** Most files whose last touch is remembered. */
const TOUCHED_ENTRIES = 4096;

/** Files up to this size are hashed from one read; larger ones are streamed. */
const SMALL_FILE_BYTES = 1024 * 1024;

/** Size and sha256 of a file, computed by streaming it (one read for small files: most task files). */
export async function hashFile(path: string, knownSize?: number): Promise<{ sha256: string; size: number }> {
  if (knownSize !== undefined && knownSize <= SMALL_FILE_BYTES) {
    const data = await readFile(path);
    return { sha256: createHash('sha256').update(data).digest('hex'), size: data.length };
  }
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}

async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}

function describeServiceError(err: unknown): string {
  if (isServiceError(err)) return err.details || err.message;
  return err instanceof Error ? err.message : String(err);
}

/** Options of FileCache. */
export interface FileCacheOptions {
  /** Deadline of one download in ms; default DEFAULT_DOWNLOAD_DEADLINE_MS. */
  downloadDeadlineMs?: number;
}

/** The content-addressed cache of task files under one directory. */
export class FileCache {
  private readonly inflight = new Map<string, Promise<void>>();
  private readonly deadlineMs: number;
  /** sha256 → when this process last touched the file (ms). */
  private readonly touched = new Map<string, number>();

  constructor(
    readonly dir: string,
    options: FileCacheOptions = {},
  ) {
    this.deadlineMs = options.downloadDeadlineMs ?? DEFAULT_DOWNLOAD_DEADLINE_MS;
  }

  /** The cache path of content with this sha256; throws for anything that is not 64 lowercase hex. */
  pathOf(sha256: string): string {
    if (!SHA256_HEX.test(sha256)) throw new Error(`'${sha256}' is not a sha256 (64 lowercase hex characters)`);
    return join(this.dir, sha256);
  }

  /**
   * Checks the cached copy of `file` (size, then sha256 by streaming it). Returns undefined when
   * it is present and intact, else one line naming the file and what differs.
   */
  async verify(file: TaskFile): Promise<string | undefined> {
    const path = this.pathOf(file.sha256);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch {
      return `${file.path} is not in the cache (expected sha256 ${file.sha256})`;
    }
    const actual = await hashFile(path, size);
    if (actual.sha256 === file.sha256 && actual.size === file.sizeBytes) return undefined;
    return `${file.path} in the cache has sha256 ${actual.sha256} (${actual.size} bytes), expected sha256 ${file.sha256} (${file.sizeBytes} bytes)`;
  }

  /**
   * Records that a cached file is in use now (its mtime), which keeps it from retention's sweep;
   * best effort: a file that vanished is noticed by the verification that follows.
   */
  async touch(sha256: string): Promise<void> {
    const now = Date.now();
    // Retention counts in days: one touch per file per TOUCH_INTERVAL_MS is as good as one per run.
    if (now - (this.touched.get(sha256) ?? 0) < TOUCH_INTERVAL_MS) return;
    if (this.touched.size >= TOUCHED_ENTRIES) this.touched.clear();
    this.touched.set(sha256, now);
    await utimes(this.pathOf(sha256), now / 1000, now / 1000).catch(() => undefined);
  }

  /**
   * Removes cache files not used (downloaded, verified for a run) for `maxAgeMs`, except those
   * in `inUse` (files of running or queued runs). Temp files of downloads are left to their
   * download. Returns the sha256 of each file removed.
   */
  async sweep(maxAgeMs: number, inUse: ReadonlySet<string>, nowMs = Date.now()): Promise<string[]> {
    const removed: string[] = [];
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return removed;
    }
    for (const name of names) {
      if (!SHA256_HEX.test(name) || inUse.has(name)) continue;
      const path = join(this.dir, name);
      try {
        if (nowMs - (await stat(path)).mtimeMs < maxAgeMs) continue;
        await unlink(path);
        removed.push(name);
      } catch {
        // Gone already, or removed by a concurrent sweep: either way not ours to report.
      }
    }
    return removed;
  }

  /** True when the cache holds `file` with the expected size and sha256. */
  async has(file: TaskFile): Promise<boolean> {
    return (await this.verify(file)) === undefined;
  }

  /**
   * Makes sure every file is in the cache, downloading the missing or damaged ones one after
   * another. Returns how many were downloaded; throws DownloadError naming the first bad file.
   */
  async ensure(files: TaskFile[], environment: string, client: MetadataServiceClient): Promise<number> {
    for (const f of files) checkTaskFile(f);
    let downloaded = 0;
    for (const f of files) {
      if (await this.has(f)) {
        metrics.cacheLookups.inc({ result: 'hit' });
        continue;
      }
      metrics.cacheLookups.inc({ result: 'miss' });
      await this.download(f, environment, client);
      downloaded++;
    }
    return downloaded;
  }

  /**
   * Streams `file` from the metadata service (ReadTaskFile) into the cache, verifying size and
   * sha256 before it becomes visible as `<cache>/<sha256>`. Throws DownloadError on any problem,
   * leaving nothing behind.
   */
  download(file: TaskFile, environment: string, client: MetadataServiceClient): Promise<void> {
    try {
      checkTaskFile(file);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const running = this.inflight.get(file.sha256);
    if (running) return running;
    const p = this.fetch(file, environment, client).finally(() => this.inflight.delete(file.sha256));
    this.inflight.set(file.sha256, p);
    return p;
  }

  private async fetch(file: TaskFile, environment: string, client: MetadataServiceClient): Promise<void> {
    const final = this.pathOf(file.sha256);
    const tmp = join(this.dir, `.download-${file.sha256}-${process.pid}-${randomBytes(6).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    const fh = await open(tmp, 'wx', CACHE_FILE_MODE);
    try {
      const call = client.readTaskFile({ environment, path: file.path, sha256: file.sha256 }, { deadline: Date.now() + this.deadlineMs });
      try {
        for await (const chunk of call as AsyncIterable<ReadTaskFileResponse>) {
          if (chunk.sha256 && chunk.sha256 !== file.sha256) {
            throw new DownloadError(file.path, `the metadata service has sha256 ${chunk.sha256} for it, expected ${file.sha256}`);
          }
          if (chunk.offset !== size) throw new DownloadError(file.path, `the metadata service sent a chunk at offset ${chunk.offset}, expected ${size}`);
          // Stop a server that sends more than announced before it fills the disk.
          if (size + chunk.data.length > file.sizeBytes) {
            throw new DownloadError(file.path, `the metadata service sent more than the expected ${file.sizeBytes} bytes`);
          }
          hash.update(chunk.data);
          await fh.write(chunk.data);
          size += chunk.data.length;
        }
      } catch (err) {
        call.cancel();
        if (err instanceof DownloadError) throw err;
        throw new DownloadError(file.path, `download from environment ${environment} failed: ${describeServiceError(err)}`);
      }
      await fh.sync();
    } catch (err) {
      await fh.close().catch(() => undefined);
      await removeQuietly(tmp);
      throw err;
    }
    await fh.close();
    const actual = hash.digest('hex');
    if (actual !== file.sha256 || size !== file.sizeBytes) {
      await removeQuietly(tmp);
      throw new DownloadError(file.path, `downloaded content has sha256 ${actual} (${size} bytes), expected sha256 ${file.sha256} (${file.sizeBytes} bytes)`);
    }
    try {
      await chmod(tmp, CACHE_FILE_MODE);
      await rename(tmp, final);
      metrics.downloadedBytes.inc(size);
    } catch (err) {
      await removeQuietly(tmp);
      throw new DownloadError(file.path, `cannot store it in the cache: ${(err as Error).message}`);
    }
  }
}

/** Throws DownloadError when a file's path or sha256 is not safe to use (checked before any I/O). */
export function checkTaskFile(file: TaskFile): void {
  const problem = taskFilePathProblem(file.path);
  if (problem) throw new DownloadError(file.path, `the path ${problem}`);
  if (!SHA256_HEX.test(file.sha256)) throw new DownloadError(file.path, `sha256 '${file.sha256}' is not 64 lowercase hex characters`);
  if (!Number.isSafeInteger(file.sizeBytes) || file.sizeBytes < 0) throw new DownloadError(file.path, `size ${file.sizeBytes} is not a byte count`);
}
