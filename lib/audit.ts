import { closeSync, openSync, writeSync } from 'node:fs';
import type { Task } from '../gen/baton/v1/task';
import { REDACTED_VALUE } from './redaction';
import { sensitiveParameters } from './task-input';

/**
 * The audit log (docs/security.md "Audit"): one JSON line per run, cancel and
 * denial, appended to a file (or written to stdout) with a synchronous write, so the line is in
 * the file before the service answers or acts. Choria wrote two audit records per run (the
 * action and the task-name action, docs/choria-compat.md §7); Baton writes one, with every field.
 */

/** The `audit-log` value meaning stdout. */
export const AUDIT_STDOUT = '-';

/** File mode of a new audit file: owner read/write only (it holds callers, filters and inputs). */
export const AUDIT_FILE_MODE = 0o600;

/** What an audit line is about. */
export type AuditEvent = 'run' | 'run_failed' | 'cancel' | 'denied';

/** One audit line: its event and fields; `time` and `service` are added on write. */
export interface AuditRecord {
  event: AuditEvent;
  caller: string;
  [field: string]: unknown;
}

/** An audit line could not be written; the service refuses what it was about (fail closed). */
export class AuditWriteError extends Error {}

/** `audit-log` of every service that audits: a path appended to, or `-` for stdout. */
export const AUDIT_CONFIG_PROPERTY = {
  'audit-log': {
    type: 'string',
    minLength: 1,
    description: 'file the audit lines (one JSON line per run, cancel and denial) are appended to, or - for stdout; off when unset',
  },
} as const;

/**
 * An open audit log. `write` is synchronous and throws AuditWriteError when the line could not
 * be written; `reopen` (on SIGHUP) opens the path again, so a rotated file is followed.
 */
export class AuditLog {
  private fd: number;

  private constructor(
    /** The path, or `-` for stdout. */
    readonly target: string,
    private readonly service: string,
    private readonly now: () => Date,
  ) {
    this.fd = AuditLog.openTarget(target);
  }

  /** Opens `target` for appending (created 0600 if missing); throws AuditWriteError naming the path. */
  static open(target: string, service: string, now: () => Date = () => new Date()): AuditLog {
    return new AuditLog(target, service, now);
  }

  private static openTarget(target: string): number {
    if (target === AUDIT_STDOUT) return 1;
    try {
      // O_APPEND: each write lands at the end even with other writers (another replica, logrotate's
      // copytruncate).
      return openSync(target, 'a', AUDIT_FILE_MODE);
    } catch (err) {
      throw new AuditWriteError(`audit log ${target} cannot be opened: ${(err as Error).message}`);
    }
  }

  /** Appends one line: `{"time":..., "service":..., "event":..., ...}`. Throws AuditWriteError. */
  write(record: AuditRecord): void {
    const line = JSON.stringify({ time: this.now().toISOString(), service: this.service, ...record }) + '\n';
    const bytes = Buffer.from(line);
    try {
      let written = 0;
      while (written < bytes.length) written += writeSync(this.fd, bytes, written);
    } catch (err) {
      throw new AuditWriteError(`audit log ${this.target} cannot be written: ${(err as Error).message}`);
    }
  }

  /** Opens the path again (after rotation); on failure keeps writing to the old descriptor and throws. */
  reopen(): void {
    if (this.target === AUDIT_STDOUT) return;
    const fd = AuditLog.openTarget(this.target);
    const old = this.fd;
    this.fd = fd;
    closeSync(old);
  }

  /** Closes the file (not stdout). */
  close(): void {
    if (this.target !== AUDIT_STDOUT) closeSync(this.fd);
  }
}

/**
 * A run's input for its audit line: `redactedJson` with every sensitive parameter
 * (lib/task-input.ts sensitiveParameters: declared `sensitive: true` or of a Sensitive type)
 * replaced by REDACTED_VALUE, the text run records and spools use too.
 */
export function auditInput(task: Pick<Task, 'parameters'>, redactedJson: string): Record<string, unknown> {
  const input = JSON.parse(redactedJson) as Record<string, unknown>;
  for (const name of sensitiveParameters(task)) {
    if (Object.prototype.hasOwnProperty.call(input, name)) input[name] = REDACTED_VALUE;
  }
  return input;
}

/**
 * The parameter names of an input, for a denial's audit line: values are never written there,
 * since which of them are sensitive is known only from task metadata a denied request may not
 * have reached. Input that is not a JSON object gives no keys.
 */
export function inputKeys(inputJson: string): string[] {
  try {
    const v: unknown = JSON.parse(inputJson === '' ? '{}' : inputJson);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? Object.keys(v) : [];
  } catch {
    return [];
  }
}
