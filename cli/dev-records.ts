import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * The records of running `baton dev` stacks, one file per stack named after its process id:
 * a second stack never overwrites the first's record, and each stack removes only its own.
 * Plain `baton` commands use the newest live one, as a whole (its addresses and its TLS
 * files together), and only when no service address is given otherwise.
 */

/** What a running `baton dev` records: its addresses, its pid and start, and with `--tls` operator alice's certificate files. */
export interface DevRecord {
  pid: number;
  /** ISO time the stack was ready. */
  started: string;
  scheduler: string;
  metadata: string;
  results: string;
  'tls-ca'?: string;
  'tls-cert'?: string;
  'tls-key'?: string;
  /** The record's file (filled in when read). */
  file?: string;
}

/** The directory of the records: `$XDG_STATE_HOME/baton/dev` (default `~/.local/state`). */
export function devRecordDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'baton', 'dev');
}

/** Writes this stack's record (atomically: a reader never sees half a file) and returns its path. */
export function writeDevRecord(record: DevRecord): string {
  const dir = devRecordDir();
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${record.pid}.json`);
  const partial = `${file}.${process.pid}.tmp`;
  writeFileSync(partial, `${JSON.stringify({ ...record, file: undefined }, null, 2)}\n`);
  renameSync(partial, file);
  return file;
}

/** Removes the record at `file` (the stack's own, as writeDevRecord returned it). */
export function removeDevRecord(file: string): void {
  rmSync(file, { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The records of stacks whose process is alive, newest first. A record left by a stack that
 * was killed is skipped, not removed: only its stack owns it.
 */
export function liveDevRecords(): DevRecord[] {
  const dir = devRecordDir();
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /^\d+\.json$/.test(n));
  } catch {
    return [];
  }
  const records: DevRecord[] = [];
  for (const name of names) {
    try {
      const r = JSON.parse(readFileSync(join(dir, name), 'utf8')) as DevRecord;
      if (typeof r.pid === 'number' && r.scheduler && r.metadata && r.results && alive(r.pid)) records.push({ ...r, file: join(dir, name) });
    } catch {
      // A record being replaced or unreadable is no stack to use.
    }
  }
  // ISO timestamps order as strings; plain comparison, since every command reads the records
  // and localeCompare's first call loads ICU's collation data.
  return records.sort((a, b) => (String(a.started) < String(b.started) ? 1 : String(a.started) > String(b.started) ? -1 : b.pid - a.pid));
}
