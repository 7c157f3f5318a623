import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** The sha256 and size of one file's content. */
export interface FileDigest {
  /** Lowercase hex SHA-256. */
  sha256: string;
  sizeBytes: number;
}

/** Files up to this size are hashed from one read instead of a stream, in bytes. */
export const WHOLE_READ_MAX_BYTES = 1024 * 1024;

/** The digest of content held in memory. */
export function digestBuffer(data: Buffer): FileDigest {
  return { sha256: createHash('sha256').update(data).digest('hex'), sizeBytes: data.length };
}

/** Hashes a whole file by streaming it; the size is the number of bytes hashed. */
export async function digestFile(path: string): Promise<FileDigest> {
  const hash = createHash('sha256');
  let sizeBytes = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    sizeBytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), sizeBytes };
}

/**
 * How long after its last change a file must have been hashed for its digest to be reused,
 * in ms. Like git's "racily clean" rule: on a file system with coarse timestamps, a file
 * rewritten with the same size within the same tick would otherwise keep a stale digest.
 */
export const RACY_WINDOW_MS = 2_000;

interface Known {
  key: string;
  digest: FileDigest;
  /** The content as UTF-8, for files read with `text` (metadata files). */
  text?: string;
  /** True when the file had not changed for RACY_WINDOW_MS when it was hashed. */
  settled: boolean;
}

/**
 * Digests of the files of one environment, remembered from one scan to the next so that a
 * rescan only re-reads files whose identity (device, inode, size, mtime, ctime) changed, and
 * files that changed just before they were hashed. Entries not used during a scan are
 * dropped when the next scan begins, so the cache never grows past the files of two scans.
 */
export class FileDigests {
  private previous = new Map<string, Known>();
  private current = new Map<string, Known>();

  /** Starts a scan: digests from the last scan stay reusable, older ones are forgotten. */
  beginScan(): void {
    this.previous = this.current;
    this.current = new Map();
  }

  /** The digest of the file at `path` now (following symlinks); rejects when it cannot be read. */
  async digest(path: string): Promise<FileDigest> {
    const { known, key, settled, sizeBytes } = this.lookup(path);
    if (known) return known.digest;
    // Task files are mostly small: one readFile costs far less than a read stream's setup.
    const digest = sizeBytes <= WHOLE_READ_MAX_BYTES ? digestBuffer(await readFile(path)) : await digestFile(path);
    this.current.set(path, { key, digest, settled });
    return digest;
  }

  /**
   * The content of the (small) file at `path` as UTF-8, read again only when its identity
   * changed: a rescan then costs one stat per metadata file instead of open, fstat, read and
   * close, which was most of a rescan of 2,000 tasks (bench/metadata-bench.ts).
   */
  async text(path: string): Promise<string> {
    const { known, key, settled } = this.lookup(path);
    if (known?.text !== undefined) return known.text;
    const buffer = await readFile(path);
    const text = buffer.toString('utf8');
    this.current.set(path, { key, digest: digestBuffer(buffer), settled, text });
    return text;
  }

  /** The remembered entry of `path` when it is still valid (and keeps it for the next scan). */
  private lookup(path: string): { known?: Known; key: string; settled: boolean; sizeBytes: number } {
    // statSync on purpose: a rescan stats every task file, and on the local disk Puppet code
    // lives on a synchronous stat takes a few µs while the thread-pool round trip of an
    // asynchronous one costs tens; this halved a rescan of 2,000 tasks (bench/metadata-bench.ts).
    const st = statSync(path);
    const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    const known = this.current.get(path) ?? this.previous.get(path);
    if (known?.key === key && known.settled) {
      this.current.set(path, known);
      return { known, key, settled: true, sizeBytes: st.size };
    }
    return { key, settled: Date.now() - Math.max(st.mtimeMs, st.ctimeMs) > RACY_WINDOW_MS, sizeBytes: st.size };
  }
}
