import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, lstatSync, readlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { scanKeys, type RedisClient } from '../../lib/redis-client';
import { redisClientOf } from './redis';

/**
 * A picture of everything Baton stores — every Redis key with its TYPE and content, every file
 * under some directories (the agents' spool and cache) with its size and sha256 — and a diff of
 * two pictures that names what changed. The bad-input suite (test/e2e/bad-input.test.ts) takes one
 * before and one after each bad request and expects no difference.
 */

/** Content of one Redis key, rendered so equal content gives equal text. */
export interface RedisEntry {
  type: string;
  /** Canonical JSON of the content: sorted set members and hash fields, list and stream in order. */
  content: string;
}

/** One file: size in bytes and sha256; a directory or symlink is recorded by kind. */
export interface FileEntry {
  kind: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  sha256: string;
}

/** What `snapshotStore` saw. */
export interface StoreSnapshot {
  redis: Map<string, RedisEntry>;
  /** Keyed by `<directory>/<path relative to it>`. */
  files: Map<string, FileEntry>;
}

/**
 * Parts of the store that change by themselves and are left out of the comparison, each named
 * exactly. A rule matches a key by its full name; `hashFields` leaves out those fields of a
 * hash, `zsetScores` the scores (not the members) of a sorted set, `whole` the whole key.
 */
export interface VolatileRule {
  key: RegExp;
  hashFields?: string[];
  zsetScores?: boolean;
  whole?: boolean;
}

/** Options of `snapshotStore`. */
export interface SnapshotOptions {
  redisUrl: string;
  /** Directories whose every file is recorded. */
  dirs: string[];
  /** What changes by itself; see VolatileRule. */
  volatile?: VolatileRule[];
}

function sorted<T>(items: T[]): T[] {
  return [...items].sort();
}

async function readKey(redis: RedisClient, key: string, rule: VolatileRule | undefined): Promise<RedisEntry> {
  const type = await redis.type(key);
  let content: unknown;
  switch (type) {
    case 'string':
      content = (await redis.getBuffer(key))?.toString('base64');
      break;
    case 'hash': {
      const all = await redis.hgetall(key);
      for (const f of rule?.hashFields ?? []) if (f in all) all[f] = '<volatile>';
      content = sorted(Object.entries(all).map(([f, v]) => `${f}=${v}`));
      break;
    }
    case 'list':
      content = await redis.lrange(key, 0, -1);
      break;
    case 'set':
      content = sorted(await redis.smembers(key));
      break;
    case 'zset': {
      const flat = await redis.zrange(key, 0, -1, 'WITHSCORES');
      const pairs: string[] = [];
      for (let i = 0; i < flat.length; i += 2) pairs.push(rule?.zsetScores ? flat[i] : `${flat[i]}@${flat[i + 1]}`);
      content = sorted(pairs);
      break;
    }
    case 'stream':
      content = await redis.xrange(key, '-', '+');
      break;
    default:
      content = null; // the key vanished between SCAN and TYPE ('none')
  }
  return { type, content: JSON.stringify(content) };
}

function walk(root: string, dir: string, into: Map<string, FileEntry>): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return; // not created yet: an agent makes its spool and cache on first use
  }
  for (const name of names.sort()) {
    const full = join(dir, name);
    const key = join(root, relative(root, full));
    const st = lstatSync(full, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory()) {
      into.set(key, { kind: 'dir', size: 0, sha256: '' });
      walk(root, full, into);
    } else if (st.isSymbolicLink()) {
      into.set(key, { kind: 'symlink', size: 0, sha256: createHash('sha256').update(readlinkSync(full)).digest('hex') });
    } else if (st.isFile()) {
      let sha256 = '';
      try {
        sha256 = createHash('sha256').update(readFileSync(full)).digest('hex');
      } catch {
        sha256 = '<unreadable>';
      }
      into.set(key, { kind: 'file', size: st.size, sha256 });
    } else {
      into.set(key, { kind: 'other', size: 0, sha256: '' });
    }
  }
}

/** Reads every Redis key (SCAN, then TYPE and content) and every file under `dirs`. */
export async function snapshotStore(options: SnapshotOptions): Promise<StoreSnapshot> {
  const redis = redisClientOf(options.redisUrl);
  const entries = new Map<string, RedisEntry>();
  try {
    const keys = await scanKeys(redis, '*');
    for (const key of sorted([...new Set(keys)])) {
      const rule = options.volatile?.find((r) => r.key.test(key));
      if (rule?.whole) continue;
      const entry = await readKey(redis, key, rule);
      if (entry.type !== 'none') entries.set(key, entry);
    }
  } finally {
    redis.disconnect();
  }
  const files = new Map<string, FileEntry>();
  for (const dir of options.dirs) walk(dir, dir, files);
  return { redis: entries, files };
}

function shorten(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max)}... (${text.length} chars)` : text;
}

/**
 * Every difference between two snapshots, one line each, naming the key or file and what
 * changed (added, removed, type or content, size or sha256); empty when nothing changed.
 */
export function diffSnapshots(before: StoreSnapshot, after: StoreSnapshot): string[] {
  const out: string[] = [];
  for (const key of sorted([...new Set([...before.redis.keys(), ...after.redis.keys()])])) {
    const a = before.redis.get(key);
    const b = after.redis.get(key);
    if (!a && b) out.push(`redis key added: ${key} (${b.type}) ${shorten(b.content)}`);
    else if (a && !b) out.push(`redis key removed: ${key} (${a.type})`);
    else if (a && b && a.type !== b.type) out.push(`redis key ${key} changed type: ${a.type} -> ${b.type}`);
    else if (a && b && a.content !== b.content) out.push(`redis key ${key} (${a.type}) changed: ${shorten(a.content)} -> ${shorten(b.content)}`);
  }
  for (const path of sorted([...new Set([...before.files.keys(), ...after.files.keys()])])) {
    const a = before.files.get(path);
    const b = after.files.get(path);
    if (!a && b) out.push(`file added: ${path} (${b.kind}, ${b.size} bytes)`);
    else if (a && !b) out.push(`file removed: ${path} (${a.kind})`);
    else if (a && b && (a.kind !== b.kind || a.size !== b.size || a.sha256 !== b.sha256)) {
      out.push(`file changed: ${path} (${a.kind}, ${a.size} bytes, ${a.sha256.slice(0, 12)}) -> (${b.kind}, ${b.size} bytes, ${b.sha256.slice(0, 12)})`);
    }
  }
  return out;
}

/** Matches the discovery index's chunk tag in a key, `{idx:<c>}:` (lib/redis.ts). */
export const INDEX_CHUNK = '\\{idx:\\d+\\}:';

/**
 * What changes by itself on a quiet stack whose keys are under `prefix`: a node's `last_seen`
 * and `session`, and the scores of its chunk's `nodes` and `online`, with every heartbeat;
 * the scores of `<prefix>:{replicas}:leases` with every lease renewal of a scheduler replica, and
 * `<prefix>:{replicas}:heartbeat-intervals` whole (written from a replica's first renewal on, and
 * changed as agents come and go).
 */
export function heartbeatVolatile(prefix: string): VolatileRule[] {
  return [
    { key: new RegExp(`^${prefix}:${INDEX_CHUNK}node:[^:]+$`), hashFields: ['last_seen', 'session'] },
    { key: new RegExp(`^${prefix}:${INDEX_CHUNK}nodes$`), zsetScores: true },
    { key: new RegExp(`^${prefix}:${INDEX_CHUNK}online$`), zsetScores: true },
    { key: new RegExp(`^${prefix}:\\{replicas\\}:leases$`), zsetScores: true },
    { key: new RegExp(`^${prefix}:\\{replicas\\}:heartbeat-intervals$`), whole: true },
  ];
}
