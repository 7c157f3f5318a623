import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { Metadata, status } from '@grpc/grpc-js';
import pino from 'pino';
import { AccessControl, actingCaller, onBehalfOf, ON_BEHALF_OF_SELF } from './access-control';
import { ConfigError } from './config';
import { PermissionDeniedError, UnavailableError } from './errors';
import { waitFor } from '../test/helpers/wait';

const dir = mkdtempSync(join(tmpdir(), 'baton-access-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A logger whose lines are collected, to check what an operator sees. */
function collectingLogger(): { log: pino.Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      out.push(chunk.toString());
      done();
    },
  });
  return {
    log: pino({ level: 'info' }, stream),
    lines: () =>
      out
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const ALICE_ONLY = 'rules:\n  - {name: alice, effect: allow, callers: [cert=alice]}\n';

/** A plaintext call (no client certificate) with the given metadata. */
function plaintextCall(entries: Record<string, string>): { metadata: Metadata; getAuthContext: () => object } {
  const metadata = new Metadata();
  for (const [k, v] of Object.entries(entries)) metadata.set(k, v);
  return { metadata, getAuthContext: () => ({}) };
}

describe('AccessControl', () => {
  it('allows everything without a policy file', () => {
    const access = AccessControl.open({ service: 'scheduler', log: collectingLogger().log });
    access.authorize({ caller: 'cert=anyone', action: 'run', task: 'demo::echo', environment: 'production' });
    assert.equal(access.policy, undefined);
  });

  it('refuses to start with a bad policy file or an audit log it cannot open, in one line', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'rules:\n  - {name: a, effect: perhaps}\n');
    assert.throws(
      () => AccessControl.open({ policyFile: bad, service: 'scheduler', log: collectingLogger().log }),
      (err: Error) => err instanceof ConfigError && err.message === `policy ${bad}: rule 1 'a': effect must be allow or deny`,
    );
    assert.throws(
      () => AccessControl.open({ policyFile: join(dir, 'nope.yaml'), service: 'scheduler', log: collectingLogger().log }),
      (err: Error) => err instanceof ConfigError && /^policy .*nope.yaml: cannot be read: ENOENT/.test(err.message),
    );
    assert.throws(
      () => AccessControl.open({ auditLog: join(dir, 'no', 'dir.log'), service: 'scheduler', log: collectingLogger().log }),
      (err: Error) => err instanceof ConfigError && /^audit log .* cannot be opened/.test(err.message),
    );
  });

  it('denies with PERMISSION_DENIED naming the rule and writes a denied line', () => {
    const file = join(dir, 'deny.yaml');
    const audit = join(dir, 'deny.log');
    writeFileSync(file, 'rules:\n  - {name: no-bob, effect: deny, callers: [cert=bob]}\n');
    const access = AccessControl.open({ policyFile: file, auditLog: audit, service: 'scheduler', log: collectingLogger().log });
    assert.throws(
      () => access.authorize({ caller: 'cert=bob', action: 'run', task: 'demo::echo', environment: 'production' }, { input_keys: ['message'] }),
      (err: Error) =>
        err instanceof PermissionDeniedError &&
        err.code === status.PERMISSION_DENIED &&
        err.message === "cert=bob may not run demo::echo in production: rule 'no-bob' denies it",
    );
    access.close();
    const [line] = readFileSync(audit, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      { ...line, time: undefined },
      {
        time: undefined,
        service: 'scheduler',
        event: 'denied',
        caller: 'cert=bob',
        action: 'run',
        task: 'demo::echo',
        environment: 'production',
        input_keys: ['message'],
        rule: 'no-bob',
        reason: "cert=bob may not run demo::echo in production: rule 'no-bob' denies it",
      },
    );
  });

  it('keeps the policy in force when a reload finds a bad file, with one error line', async () => {
    const file = join(dir, 'reload.yaml');
    writeFileSync(file, ALICE_ONLY);
    const { log, lines } = collectingLogger();
    const access = AccessControl.open({ policyFile: file, service: 'results', log });
    writeFileSync(file, 'rules: [oops\n');
    assert.equal(access.reload(), false);
    access.authorize({ caller: 'cert=alice', action: 'read' });
    const errors = lines().filter((l) => l.level === 50);
    assert.equal(errors.length, 1);
    assert.match(String(errors[0].msg), /^policy .*reload.yaml: not valid YAML: .*; the policy loaded before stays in force$/);
    writeFileSync(file, 'default: allow\n');
    const stop = access.reloadOnSighup();
    try {
      process.kill(process.pid, 'SIGHUP'); // what an operator sends
      await waitFor('the reloaded policy', () => access.policy?.defaultEffect === 'allow', 20_000);
    } finally {
      stop();
    }
    access.authorize({ caller: 'cert=bob', action: 'read' });
  });

  it('fails closed when an audit line cannot be written', () => {
    const access = AccessControl.open({ auditLog: '/dev/full', service: 'scheduler', log: collectingLogger().log });
    assert.throws(
      () => access.audit({ event: 'run', caller: 'cert=alice' }),
      (err: Error) => err instanceof UnavailableError && /audit log cannot be written/.test(err.message),
    );
    access.auditBestEffort({ event: 'cancel', caller: 'cert=alice' }); // a cancel goes on
    access.close();
  });
});

describe('actingCaller', () => {
  it('reads a plaintext caller from x-baton-caller, and a forwarded one from x-baton-on-behalf-of', () => {
    assert.equal(actingCaller(plaintextCall({ 'x-baton-caller': 'user=alice' })), 'user=alice');
    assert.equal(actingCaller(plaintextCall({})), 'user=unknown');
    const forwarded = plaintextCall({});
    forwarded.metadata.merge(onBehalfOf('cert=alice'));
    assert.equal(actingCaller(forwarded), 'cert=alice');
    assert.equal(actingCaller(plaintextCall({ 'x-baton-on-behalf-of': ON_BEHALF_OF_SELF, 'x-baton-caller': 'user=mallory' })), undefined);
  });
});
