import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issueCertificate } from '../../lib/pki';

/** PEM files of a throwaway CA, a server certificate for 127.0.0.1 and localhost, and a client certificate. */
export interface TestCertificates {
  /** The PKI directory (lib/pki.ts layout): more certificates can be issued into it with issueCertificate. */
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/**
 * Makes a CA and two certificates it signed with lib/pki.ts, valid for 2 days: a service
 * certificate named `localhost` and an agent certificate named `node1` as the client.
 */
export function makeTestCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'baton-certs-'));
  const { ca } = createCa(dir, { days: 2 });
  const server = issueCertificate(dir, 'service', 'localhost', { days: 2 });
  const client = issueCertificate(dir, 'agent', 'node1', { days: 2 });
  return { dir, ca, serverCert: server.cert, serverKey: server.key, clientCert: client.cert, clientKey: client.key };
}
