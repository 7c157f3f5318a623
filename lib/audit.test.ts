import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Parameter } from '../gen/baton/v1/task';
import { auditInput, AuditLog, AuditWriteError, inputKeys } from './audit';
import { REDACTED_VALUE } from './redaction';

const dir = mkdtempSync(join(tmpdir(), 'baton-audit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const lines = (path: string): Record<string, unknown>[] =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('AuditLog', () => {
  it('appends one JSON line per record with time and service, to a file only its owner reads', () => {
    const path = join(dir, 'a.log');
    const log = AuditLog.open(path, 'scheduler', () => new Date('2026-01-02T03:04:05.000Z'));
    log.write({ event: 'run', caller: 'cert=alice', task: 'demo::echo' });
    log.write({ event: 'denied', caller: 'cert=bob', rule: null });
    log.close();
    assert.deepEqual(lines(path), [
      { time: '2026-01-02T03:04:05.000Z', service: 'scheduler', event: 'run', caller: 'cert=alice', task: 'demo::echo' },
      { time: '2026-01-02T03:04:05.000Z', service: 'scheduler', event: 'denied', caller: 'cert=bob', rule: null },
    ]);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const again = AuditLog.open(path, 'results');
    again.write({ event: 'cancel', caller: 'cert=alice' });
    again.close();
    assert.equal(lines(path).length, 3, 'a second open appends');
  });

  it('follows a rotated file after reopen', () => {
    const path = join(dir, 'rotated.log');
    const log = AuditLog.open(path, 'results');
    log.write({ event: 'run', caller: 'one' });
    renameSync(path, `${path}.1`);
    log.write({ event: 'run', caller: 'two' }); // still the old file, as logrotate expects until the signal
    log.reopen();
    log.write({ event: 'run', caller: 'three' });
    log.close();
    assert.deepEqual(
      lines(`${path}.1`).map((l) => l.caller),
      ['one', 'two'],
    );
    assert.deepEqual(
      lines(path).map((l) => l.caller),
      ['three'],
    );
  });

  it('throws AuditWriteError naming the path when it cannot open or write', () => {
    assert.throws(
      () => AuditLog.open(join(dir, 'missing', 'a.log'), 'scheduler'),
      (err: Error) => err instanceof AuditWriteError && /^audit log .*missing\/a.log cannot be opened: ENOENT/.test(err.message),
    );
    const full = AuditLog.open('/dev/full', 'scheduler');
    assert.throws(
      () => full.write({ event: 'run', caller: 'c' }),
      (err: Error) => err instanceof AuditWriteError && /^audit log \/dev\/full cannot be written: ENOSPC/.test(err.message),
    );
    full.close();
  });
});

describe('auditInput', () => {
  it('redacts parameters declared sensitive and those of a Sensitive type, and keeps the rest', () => {
    const parameters = [
      Parameter.fromPartial({ name: 'password', type: 'String', sensitive: true }),
      Parameter.fromPartial({ name: 'token', type: 'Optional[Sensitive[String]]' }),
      Parameter.fromPartial({ name: 'user', type: 'String' }),
      Parameter.fromPartial({ name: 'mode', type: 'Enum[NotSensitive]' }),
    ];
    const redactedJson = JSON.stringify({ password: REDACTED_VALUE, token: 'abc', user: 'root', mode: 'NotSensitive' });
    assert.deepEqual(auditInput({ parameters }, redactedJson), { password: REDACTED_VALUE, token: REDACTED_VALUE, user: 'root', mode: 'NotSensitive' });
  });
});

describe('inputKeys', () => {
  it('lists the keys of a JSON object and nothing for anything else', () => {
    assert.deepEqual(inputKeys('{"a": 1, "b": {"c": 2}}'), ['a', 'b']);
    assert.deepEqual(inputKeys(''), []);
    assert.deepEqual(inputKeys('[1]'), []);
    assert.deepEqual(inputKeys('{"a":'), []);
  });
});
