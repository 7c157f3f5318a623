import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { makeTestCertificates } from '../test/helpers/certificates';
import { issueCertificate } from '../lib/pki';
import { Clients } from './connection';

describe('Clients.callerId', () => {
  it('is cert=<CN> of the client certificate with TLS, as the services record it (lib/peer-identity.ts)', () => {
    const certs = makeTestCertificates();
    const alice = issueCertificate(certs.dir, 'operator', 'alice', { days: 2 });
    const clients = new Clients({ tlsCa: alice.ca, tlsCert: alice.cert, tlsKey: alice.key });
    assert.equal(clients.callerId(), 'cert=alice');
  });
});
