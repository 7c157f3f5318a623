import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { defaultCaCerts, EXTRA_CA_CERTS_HANDOFF, takeExtraCaCerts } from './extra-ca-certs';

describe('takeExtraCaCerts', () => {
  it('leaves everything as it is without the hand-off', () => {
    const env: NodeJS.ProcessEnv = { NODE_EXTRA_CA_CERTS: '/etc/ssl/extra.pem' };
    takeExtraCaCerts(env);
    assert.deepEqual(env, { NODE_EXTRA_CA_CERTS: '/etc/ssl/extra.pem' });
    assert.equal(defaultCaCerts(), undefined, "Node's own store holds the file");
  });

  it('puts NODE_EXTRA_CA_CERTS back for child processes and trusts its file beside the roots', () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-extra-ca-'));
    try {
      const file = join(dir, 'extra.pem');
      writeFileSync(file, '-----BEGIN CERTIFICATE-----\nextra\n-----END CERTIFICATE-----\n');
      const env: NodeJS.ProcessEnv = { [EXTRA_CA_CERTS_HANDOFF]: file };
      takeExtraCaCerts(env);
      assert.deepEqual(env, { NODE_EXTRA_CA_CERTS: file });
      const cas = defaultCaCerts()!.toString();
      assert.ok(cas.startsWith(rootCertificates[0]), "Node's roots first");
      assert.ok(cas.endsWith('extra\n-----END CERTIFICATE-----\n'), 'then the file');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
