import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { MetadataServiceClient, MetadataServiceService, type MetadataServiceServer } from '../gen/baton/v1/metadata_service';
import { makeTestCertificates, type TestCertificates } from '../test/helpers/certificates';
import { NotFoundError } from './errors';
import { makeClient, unary } from './grpc-client';
import { createCa, issueCertificate } from './pki';
import { probeTls } from './tls';
import { startServer, unaryHandler, type RunningServer } from './grpc-server';
import { createLogger } from './logger';

const log = createLogger('test', 'silent');

/** A handler that always answers NOT_FOUND: reaching it proves the TLS handshake worked. */
const probe = {
  getTask: unaryHandler(log, () => {
    throw new NotFoundError('TASK_NOT_FOUND', 'reached the handler');
  }),
} as Partial<MetadataServiceServer> as MetadataServiceServer;

async function callOutcome(client: MetadataServiceClient): Promise<{ code: status; details: string }> {
  try {
    await unary(client, client.getTask, { environment: '', task: 'x' }, { deadlineMs: 3000 });
    return { code: status.OK, details: '' };
  } catch (err) {
    return { code: (err as ServiceError).code, details: (err as ServiceError).details };
  } finally {
    client.close();
  }
}

describe('TLS when configured', () => {
  let certs: TestCertificates;
  let mtlsServer: RunningServer;

  before(async () => {
    certs = makeTestCertificates();
    const services = [{ name: 'baton.v1.MetadataService', definition: MetadataServiceService, implementation: probe }];
    mtlsServer = await startServer({
      listen: '127.0.0.1:0',
      log,
      services,
      tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca },
      drainGraceMs: 200,
    });
  });
  after(async () => {
    await mtlsServer.drain();
    rmSync(certs.dir, { recursive: true, force: true });
  });

  it('will not serve TLS without a CA to check client certificates with', async () => {
    const services = [{ name: 'baton.v1.MetadataService', definition: MetadataServiceService, implementation: probe }];
    await assert.rejects(
      startServer({ listen: '127.0.0.1:0', log, services, tls: { cert: certs.serverCert, key: certs.serverKey }, drainGraceMs: 200 }),
      /tls-cert is set but tls-ca is not; a TLS server requires client certificates signed by tls-ca/,
    );
  });

  it('refuses a plaintext client', async () => {
    const outcome = await callOutcome(makeClient(MetadataServiceClient, mtlsServer.address));
    assert.equal(outcome.code, status.UNAVAILABLE);
  });

  it('requires a client certificate signed by the CA when a CA is configured', async () => {
    const without = await callOutcome(makeClient(MetadataServiceClient, mtlsServer.address, { ca: certs.ca }));
    assert.equal(without.code, status.UNAVAILABLE);
    const withCert = await callOutcome(makeClient(MetadataServiceClient, mtlsServer.address, { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey }));
    assert.deepEqual(withCert, { code: status.NOT_FOUND, details: 'reached the handler' });
  });

  it('probeTls names each mismatch grpc-js reports as "Failed to connect" or an OpenSSL line', async () => {
    const services = [{ name: 'baton.v1.MetadataService', definition: MetadataServiceService, implementation: probe }];
    const plain = await startServer({ listen: '127.0.0.1:0', log, services, drainGraceMs: 200 });
    const foreign = createCa(join(certs.dir, 'foreign'));
    const mallory = issueCertificate(join(certs.dir, 'foreign'), 'operator', 'mallory');
    const ours = { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey };
    try {
      const outcome = async (address: string, tls: Parameters<typeof probeTls>[1]) => (await probeTls(address, tls)).outcome;
      assert.equal(await outcome(mtlsServer.address, {}), 'TLS_REQUIRED');
      assert.equal(await outcome(plain.address, ours), 'PLAINTEXT_SERVER');
      assert.equal(await outcome(mtlsServer.address, { ca: certs.ca }), 'CERTIFICATE_REQUIRED');
      assert.equal(await outcome(mtlsServer.address, { ca: certs.ca, cert: mallory.cert, key: mallory.key }), 'CERTIFICATE_REFUSED');
      assert.equal(await outcome(mtlsServer.address, { ca: foreign.ca, cert: mallory.cert, key: mallory.key }), 'SERVER_UNTRUSTED');
      assert.equal(await outcome(mtlsServer.address, ours), 'NO_TLS_PROBLEM');
      assert.equal(await outcome(plain.address, {}), 'NO_TLS_PROBLEM');
    } finally {
      await plain.drain();
    }
  });
});
