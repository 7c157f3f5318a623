import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issueCertificate, PkiError } from './pki';

function load(path: string): X509Certificate {
  return new X509Certificate(readFileSync(path));
}

describe('pki', () => {
  let base: string;
  let dir: string;

  before(() => {
    base = mkdtempSync(join(tmpdir(), 'baton-pki-'));
    dir = join(base, 'pki');
    createCa(dir, { days: 30 });
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  it('creates the CA in a 0700 directory with a 0600 key and refuses to overwrite it', () => {
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, 'ca.key')).mode & 0o777, 0o600);
    const ca = load(join(dir, 'ca.pem'));
    assert.equal(ca.ca, true);
    assert.equal(ca.checkIssued(ca), true);
    assert.throws(
      () => createCa(dir),
      (err: Error) => err instanceof PkiError && /a CA already exists in .*refusing to overwrite/.test(err.message),
    );
  });

  it('issues a service certificate with CN, OU, SANs and server and client EKU, signed by the CA', () => {
    const files = issueCertificate(dir, 'service', 'scheduler', { sans: ['DNS:scheduler.example.com', 'IP:10.0.0.5'] });
    assert.equal(files.cert, join(dir, 'service-scheduler.pem'));
    assert.equal(files.key, join(dir, 'service-scheduler.key'));
    assert.equal(statSync(files.key).mode & 0o777, 0o600);
    const cert = load(files.cert);
    assert.match(cert.subject, /^CN=scheduler$/m);
    assert.match(cert.subject, /^OU=baton-service$/m);
    assert.equal(cert.subjectAltName, 'DNS:scheduler, DNS:localhost, IP Address:127.0.0.1, DNS:scheduler.example.com, IP Address:10.0.0.5');
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    assert.equal(cert.ca, false);
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(cert.verify(load(files.ca).publicKey), true);
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  });

  it('gives agents and operators client EKU only and no SANs', () => {
    for (const role of ['agent', 'operator'] as const) {
      const cert = load(issueCertificate(dir, role, 'node1.example.com').cert);
      assert.match(cert.subject, /^CN=node1\.example\.com$/m);
      assert.match(cert.subject, new RegExp(`^OU=baton-${role}$`, 'm'));
      assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2']);
      assert.equal(cert.subjectAltName, undefined);
    }
  });

  it('makes certificates that a CA from another directory did not sign', () => {
    const other = createCa(join(base, 'other'));
    const cert = load(issueCertificate(dir, 'agent', 'node2').cert);
    assert.equal(cert.verify(load(other.cert).publicKey), false);
    assert.equal(cert.checkIssued(load(other.cert)), false);
  });

  it('refuses names that are not node identities, bad SANs and a missing CA in one line', () => {
    for (const name of ['../evil', 'a/b', '', '-x', 'a b', 'x\ny']) {
      assert.throws(
        () => issueCertificate(dir, 'agent', name),
        (err: Error) => err instanceof PkiError && err.message.startsWith('invalid certificate name') && !err.message.includes('\n'),
      );
    }
    assert.throws(() => issueCertificate(dir, 'service', 'x', { sans: ['DNS:a\nbasicConstraints=CA:TRUE'] }), /invalid subjectAltName/);
    assert.throws(() => issueCertificate(dir, 'root' as 'agent', 'x'), /unknown certificate role 'root'/);
    const empty = join(base, 'empty');
    assert.throws(
      () => issueCertificate(empty, 'agent', 'x'),
      (err: Error) => err instanceof PkiError && err.message === `no CA in ${empty}; run \`baton pki init --dir ${empty}\` first`,
    );
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.startsWith('agent-') && !f.startsWith('agent-node')),
      [],
    );
  });
});
