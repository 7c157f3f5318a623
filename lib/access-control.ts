import { readFileSync } from 'node:fs';
import { Metadata } from '@grpc/grpc-js';
import { AuditLog, AuditWriteError, type AuditRecord } from './audit';
import { ConfigError } from './config';
import { PermissionDeniedError, UnavailableError } from './errors';
import type { Logger } from './logger';
import { callerOf, peerOf, type CallerSource } from './peer-identity';
import { Policy, PolicyError, type PolicyRequest } from './policy';

export type { CallerSource } from './peer-identity';

/**
 * What the scheduler and the results service check before they act for a caller: the policy file
 * (`policy-file`, reloaded on SIGHUP) and the audit log (`audit-log`). Without a policy file every
 * request is allowed, so a stack without one behaves as it always did.
 */

/** `policy-file` of the scheduler and the results service. */
export const POLICY_CONFIG_PROPERTY = {
  'policy-file': {
    type: 'string',
    minLength: 1,
    description: 'YAML authorization policy (docs/security.md); every request is allowed when unset; reloaded on SIGHUP',
  },
} as const;

/** Options of `AccessControl.open`. */
export interface AccessControlOptions {
  /** The policy file; undefined allows everything. */
  policyFile?: string;
  /** The audit log path, or `-` for stdout; undefined writes no audit lines. */
  auditLog?: string;
  /** The process named in audit lines (`scheduler`, `results`). */
  service: string;
  log: Logger;
}

/** Reads and parses a policy file; throws PolicyError (one line). */
export function readPolicyFile(path: string): Policy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new PolicyError(`policy ${path}: cannot be read: ${(err as Error).message}`);
  }
  return Policy.parse(text, path);
}

/** A service's policy and audit log. */
export class AccessControl {
  private constructor(
    private current: Policy | undefined,
    private readonly policyFile: string | undefined,
    private readonly auditLog: AuditLog | undefined,
    private readonly log: Logger,
  ) {}

  /**
   * Loads the policy and opens the audit log; a bad policy file or an audit log that cannot be
   * opened is a ConfigError (one line), so the service refuses to start.
   */
  static open(options: AccessControlOptions): AccessControl {
    try {
      const policy = options.policyFile === undefined ? undefined : readPolicyFile(options.policyFile);
      const audit = options.auditLog === undefined ? undefined : AuditLog.open(options.auditLog, options.service);
      if (policy) options.log.info({ policy: policy.source, rules: policy.size, default: policy.defaultEffect }, 'authorization policy loaded');
      return new AccessControl(policy, options.policyFile, audit, options.log);
    } catch (err) {
      if (err instanceof PolicyError || err instanceof AuditWriteError) throw new ConfigError(err.message);
      throw err;
    }
  }

  /** Allows everything and audits nothing: for in-process tests and callers without a configuration. */
  static none(log: Logger): AccessControl {
    return new AccessControl(undefined, undefined, undefined, log);
  }

  /** The policy in force; undefined when none is configured. */
  get policy(): Policy | undefined {
    return this.current;
  }

  /**
   * Reads the policy file again and reopens the audit log (after rotation). A bad file keeps the
   * policy in force and logs one error line; returns whether the new policy is in force.
   */
  reload(): boolean {
    try {
      this.auditLog?.reopen();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'audit log not reopened; still writing to the file opened before');
    }
    if (this.policyFile === undefined) return false;
    try {
      this.current = readPolicyFile(this.policyFile);
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      this.log.error(`${err.message}; the policy loaded before stays in force`);
      return false;
    }
    this.log.info({ policy: this.current.source, rules: this.current.size, default: this.current.defaultEffect }, 'authorization policy reloaded');
    return true;
  }

  /** Reloads on every SIGHUP; returns the function removing the handler. */
  reloadOnSighup(): () => void {
    const onHup = () => void this.reload();
    process.on('SIGHUP', onHup);
    return () => process.off('SIGHUP', onHup);
  }

  /** True when a policy rule with `nodes` could decide `request`: load the selected nodes first. */
  needsNodes(request: PolicyRequest): boolean {
    return this.current?.needsNodes(request) ?? false;
  }

  /**
   * Allows `request` or throws PermissionDeniedError naming the rule, after an audit line
   * `denied` with `details` (never input values: see inputKeys in lib/audit.ts). A denial whose
   * audit line cannot be written is still a denial; the write failure is logged.
   */
  authorize(request: PolicyRequest, details: Record<string, unknown> = {}): void {
    if (!this.current) return;
    const decision = this.current.decide(request);
    if (decision.allowed) return;
    this.refuse(request, details, decision.rule, decision.message, 'POLICY_DENIED');
  }

  /**
   * Throws PermissionDeniedError with `message`, after a `denied` audit line naming the rule
   * (null for a refusal by a setting such as own-results-only). A denial whose audit line cannot
   * be written is still a denial; the write failure is logged.
   */
  refuse(request: PolicyRequest, details: Record<string, unknown>, rule: string | undefined, message: string, reason: string): never {
    try {
      this.auditLog?.write({
        event: 'denied',
        caller: request.caller,
        action: request.action,
        task: request.task ?? null,
        environment: request.environment ?? null,
        ...details,
        rule: rule ?? null,
        reason: message,
      });
    } catch (err) {
      this.log.error({ err: (err as Error).message, caller: request.caller, action: request.action }, 'denial not audited');
    }
    this.log.info({ caller: request.caller, action: request.action, task: request.task, rule, reason }, 'request denied');
    throw new PermissionDeniedError(message, reason, rule ? { rule } : {});
  }

  /**
   * Writes one audit line. Fails closed: a line that cannot be written is UNAVAILABLE for the
   * caller, and what it was about must not happen (the service log has the cause).
   */
  audit(record: AuditRecord): void {
    if (!this.auditLog) return;
    try {
      this.auditLog.write(record);
    } catch (err) {
      this.log.error({ err: (err as Error).message, event: record.event, caller: record.caller }, 'audit line not written; request refused');
      throw new UnavailableError('the audit log cannot be written, so the request is refused; see the service log');
    }
  }

  /** Writes one audit line, logging (not throwing) a failure: for what must happen anyway (a cancel). */
  auditBestEffort(record: AuditRecord): void {
    try {
      this.audit(record);
    } catch {
      // logged by audit()
    }
  }

  /** Closes the audit log. */
  close(): void {
    this.auditLog?.close();
  }
}

/**
 * Request metadata by which a service (the scheduler) says whose request it is serving when it
 * calls another service: the operator's caller id when it reads for that operator (a WatchRun it
 * relays, the runs a `bolt_task()` term names), or ON_BEHALF_OF_SELF for its own bookkeeping.
 * Honoured only from a service certificate, or on a plaintext connection (`insecure` mode, where
 * every caller id is self-declared anyway).
 */
export const ON_BEHALF_OF_METADATA_KEY = 'x-baton-on-behalf-of';

/** ON_BEHALF_OF_METADATA_KEY's value for a service acting for itself. */
export const ON_BEHALF_OF_SELF = '-';

/** Metadata of a call made for `caller` (a caller id, or ON_BEHALF_OF_SELF). */
export function onBehalfOf(caller: string): Metadata {
  const m = new Metadata();
  m.set(ON_BEHALF_OF_METADATA_KEY, caller);
  return m;
}

/**
 * Who a call acts for, for authorization: undefined for a service acting for itself (a call
 * from a service certificate, never policy-checked: it serves a request it checked already),
 * the forwarded caller id for a service acting for an operator, else the caller's own id:
 * `cert=<CN>` from its certificate, or (plaintext, insecure mode) `x-baton-caller`.
 */
export function actingCaller(call: CallerSource): string | undefined {
  const peer = peerOf(call);
  const forwarded = call.metadata.get(ON_BEHALF_OF_METADATA_KEY)[0];
  if (peer?.role === 'service' || (peer === undefined && typeof forwarded === 'string')) {
    return typeof forwarded !== 'string' || forwarded === ON_BEHALF_OF_SELF ? undefined : forwarded;
  }
  return callerOf(call);
}
