import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Metadata } from '@grpc/grpc-js';
import { ListEnvironmentsResponse, MetadataServiceClient, MetadataServiceService, type MetadataServiceServer } from '../gen/baton/v1/metadata_service';
import { makeTestCertificates, type TestCertificates } from '../test/helpers/certificates';
import { makeClient, unary } from './grpc-client';
import { startServer, unaryHandler, type RunningServer } from './grpc-server';
import { createLogger } from './logger';
import { ANY_ROLE } from './method-roles';
import { callerOf, peerOf, type Peer } from './peer-identity';
import { issueCertificate } from './pki';
import type { TlsFiles } from './tls';

/** Who a real server sees calling, over real TLS and over plaintext. */

const log = createLogger('test', 'silent');

interface Seen {
  peer: Peer | undefined;
  caller: string;
}

/** A server whose ListEnvironments reports peerOf and callerOf of each call. */
async function probeServer(tls?: TlsFiles): Promise<{ server: RunningServer; seen: Seen[] }> {
  const seen: Seen[] = [];
  const probe: Partial<MetadataServiceServer> = {
    listEnvironments: unaryHandler(log, (_req, call) => {
      seen.push({ peer: peerOf(call), caller: callerOf(call) });
      return ListEnvironmentsResponse.fromPartial({});
    }),
  };
  const services = [
    { name: 'baton.v1.MetadataService', definition: MetadataServiceService, implementation: probe as MetadataServiceServer, roles: { default: ANY_ROLE } },
  ];
  const server = await startServer({ listen: '127.0.0.1:0', log, tls, drainGraceMs: 500, services });
  return { server, seen };
}

function claiming(caller: string): Metadata {
  const md = new Metadata();
  md.set('x-baton-caller', caller);
  return md;
}

describe('peerOf and callerOf with a client certificate', () => {
  let certs: TestCertificates;
  let server: RunningServer;
  let seen: Seen[];

  before(async () => {
    certs = makeTestCertificates();
    ({ server, seen } = await probeServer({ ca: certs.ca, cert: certs.serverCert, key: certs.serverKey }));
  });
  after(() => server.drain());

  async function callAs(role: 'agent' | 'service' | 'operator', name: string, metadata = new Metadata()): Promise<Seen> {
    const files = issueCertificate(certs.dir, role, name, { days: 2 });
    const client = makeClient(MetadataServiceClient, server.address, files);
    try {
      await unary(client, client.listEnvironments, {}, { metadata });
    } finally {
      client.close();
    }
    return seen[seen.length - 1];
  }

  it('reads name and role from the certificate (CN, OU=baton-<role>)', async () => {
    assert.deepEqual(await callAs('agent', 'node1'), { peer: { name: 'node1', role: 'agent' }, caller: 'cert=node1' });
    assert.deepEqual(await callAs('service', 'scheduler'), { peer: { name: 'scheduler', role: 'service' }, caller: 'cert=scheduler' });
  });

  it('ignores x-baton-caller completely: bob claiming to be alice is cert=bob', async () => {
    const got = await callAs('operator', 'bob', claiming('cert=alice'));
    assert.deepEqual(got, { peer: { name: 'bob', role: 'operator' }, caller: 'cert=bob' });
  });
});

describe('peerOf and callerOf on a plaintext (insecure) connection', () => {
  let server: RunningServer;
  let seen: Seen[];
  let client: MetadataServiceClient;

  before(async () => {
    ({ server, seen } = await probeServer());
    client = makeClient(MetadataServiceClient, server.address);
  });
  after(async () => {
    client.close();
    await server.drain();
  });

  it('has no peer; the caller names itself with x-baton-caller, else user=unknown', async () => {
    await unary(client, client.listEnvironments, {}, { metadata: claiming('user=carol') });
    await unary(client, client.listEnvironments, {});
    assert.deepEqual(seen, [
      { peer: undefined, caller: 'user=carol' },
      { peer: undefined, caller: 'user=unknown' },
    ]);
  });
});

describe('peerOf on odd subjects', () => {
  const withSubject = (subject: Record<string, string | string[]>) => ({ getAuthContext: () => ({ sslPeerCertificate: { subject } as never }) });

  it('gives no role for an OU other than exactly baton-agent, baton-service or baton-operator, or for several OUs', () => {
    assert.deepEqual(peerOf(withSubject({ CN: 'x', OU: 'baton-admin' })), { name: 'x', role: undefined });
    assert.deepEqual(peerOf(withSubject({ CN: 'x', OU: 'Baton-Agent' })), { name: 'x', role: undefined });
    assert.deepEqual(peerOf(withSubject({ CN: 'x', OU: ['baton-agent', 'baton-operator'] })), { name: 'x', role: undefined });
    assert.deepEqual(peerOf(withSubject({ CN: ['x', 'y'], OU: 'baton-agent' })), { name: '', role: 'agent' });
  });
});
