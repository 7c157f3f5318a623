import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { makeGenericClientConstructor, status, type Client, type ServiceError } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import pino from 'pino';
import {
  ListTasksRequest,
  ListTasksResponse,
  MetadataServiceClient,
  MetadataServiceService,
  type MetadataServiceServer,
  type ReadTaskFileResponse,
} from '../gen/baton/v1/metadata_service';
import { makeTestCertificates, type TestCertificates } from '../test/helpers/certificates';
import { issueSubjectCertificate } from '../test/helpers/subject-certificate';
import { readServiceError } from './errors';
import { makeClient, unary } from './grpc-client';
import { startServer, unaryHandler, type RunningServer } from './grpc-server';
import { allowedRolesByPath, type MethodRoles } from './method-roles';
import { issueCertificate } from './pki';
import { channelCredentials, type TlsFiles } from './tls';

/**
 * Roles per method on a real TLS server with real certificates (lib/pki.ts): the
 * interceptor refuses before any handler runs, with the code and message docs/security.md gives.
 */

const LIST = ListTasksRequest.fromPartial({});

const ROLES: MethodRoles = { default: ['operator', 'service'], methods: { ListEnvironments: ['agent'] } };

describe('roles per method on a TLS server', () => {
  let certs: TestCertificates;
  let server: RunningServer;
  const handled: string[] = [];
  const logLines: string[] = [];
  const clients: Client[] = [];

  /** A client of the server with the certificate `<dir>/<file>.pem`. */
  function clientAs(cert: string, key: string): MetadataServiceClient {
    const client = makeClient(MetadataServiceClient, server.address, { ca: certs.ca, cert, key });
    clients.push(client);
    return client;
  }
  function issued(role: 'agent' | 'service' | 'operator', name: string): MetadataServiceClient {
    const files = issueCertificate(certs.dir, role, name, { days: 2 });
    return clientAs(files.cert, files.key);
  }
  async function refusal(p: Promise<unknown>): Promise<ServiceError> {
    return p.then(
      () => assert.fail('expected the call to be refused'),
      (err: ServiceError) => err,
    );
  }

  before(async () => {
    certs = makeTestCertificates();
    const logStream = new PassThrough();
    logStream.on('data', (chunk: Buffer) => logLines.push(...chunk.toString().split('\n').filter(Boolean)));
    const log = pino({ level: 'warn' }, logStream);
    const probe: Partial<MetadataServiceServer> = {
      listTasks: unaryHandler(log, () => {
        handled.push('ListTasks');
        return ListTasksResponse.fromPartial({});
      }),
      listEnvironments: unaryHandler(log, () => {
        handled.push('ListEnvironments');
        return { environments: [] };
      }),
      readTaskFile: (call) => {
        handled.push('ReadTaskFile');
        call.end();
      },
    };
    const tls: TlsFiles = { ca: certs.ca, cert: certs.serverCert, key: certs.serverKey };
    server = await startServer({
      listen: '127.0.0.1:0',
      log,
      tls,
      drainGraceMs: 500,
      services: [{ name: 'baton.v1.MetadataService', definition: MetadataServiceService, implementation: probe as MetadataServiceServer, roles: ROLES }],
    });
  });
  after(async () => {
    for (const c of clients) c.close();
    await server.drain();
  });

  it('lets a certificate of an allowed role call the method', async () => {
    const operator = issued('operator', 'alice');
    await unary(operator, operator.listTasks, LIST);
    const agent = issued('agent', 'node7');
    await unary(agent, agent.listEnvironments, {});
    assert.deepEqual(handled.slice(-2), ['ListTasks', 'ListEnvironments']);
  });

  it('refuses a certificate of another role with PERMISSION_DENIED naming certificate, method and roles; the handler never runs', async () => {
    const before = handled.length;
    const agent = issued('agent', 'node1');
    const err = await refusal(unary(agent, agent.listTasks, LIST));
    assert.equal(err.code, status.PERMISSION_DENIED);
    assert.equal(err.details, "certificate 'node1' is an agent certificate; baton.v1.MetadataService/ListTasks needs an operator or service certificate");
    assert.equal(readServiceError(err).reason, 'ROLE_NOT_ALLOWED');

    const operator = issued('operator', 'bob');
    const denied = await refusal(unary(operator, operator.listEnvironments, {}));
    assert.equal(denied.code, status.PERMISSION_DENIED);
    assert.equal(denied.details, "certificate 'bob' is an operator certificate; baton.v1.MetadataService/ListEnvironments needs an agent certificate");
    assert.equal(handled.length, before);
    assert.ok(
      logLines.some((l) => /"level":40/.test(l) && l.includes('ListEnvironments') && l.includes('"peer":"bob"')),
      'one warn line names the refused call',
    );
  });

  it('refuses a server-streaming call before its handler starts', async () => {
    const before = handled.length;
    const agent = issued('agent', 'node2');
    const stream = agent.readTaskFile({ environment: '', path: 'a/tasks/b.sh', sha256: '' });
    stream.on('data', (_: ReadTaskFileResponse) => assert.fail('no data expected'));
    const err = await new Promise<ServiceError>((resolve) => stream.on('error', resolve));
    assert.equal(err.code, status.PERMISSION_DENIED);
    assert.equal(handled.length, before);
  });

  it('refuses a certificate without a Baton role, or with another OU, as UNAUTHENTICATED', async () => {
    const before = handled.length;
    const plain = issueSubjectCertificate(certs.dir, 'plain-x', '/CN=x');
    const client = clientAs(plain.cert, plain.key);
    const err = await refusal(unary(client, client.listTasks, LIST));
    assert.equal(err.code, status.UNAUTHENTICATED);
    assert.equal(err.details, "certificate 'x' carries no Baton role (OU=baton-agent, baton-service or baton-operator); issue it with `baton pki issue`");

    const other = issueSubjectCertificate(certs.dir, 'admin-y', '/CN=y/OU=baton-admin');
    const admin = clientAs(other.cert, other.key);
    assert.equal((await refusal(unary(admin, admin.listTasks, LIST))).code, status.UNAUTHENTICATED);

    const twoRoles = issueSubjectCertificate(certs.dir, 'two-z', '/CN=z/OU=baton-agent/OU=baton-operator');
    const both = clientAs(twoRoles.cert, twoRoles.key);
    assert.equal((await refusal(unary(both, both.listTasks, LIST))).code, status.UNAUTHENTICATED);
    assert.equal(handled.length, before);
  });

  it('answers health checks for any certificate the CA signed, with or without a role', async () => {
    const plain = issueSubjectCertificate(certs.dir, 'plain-probe', '/CN=probe');
    const HealthClient = makeGenericClientConstructor(healthService, 'Health');
    const health = new HealthClient(server.address, channelCredentials({ ca: certs.ca, cert: plain.cert, key: plain.key })) as Client &
      Record<string, (...args: unknown[]) => unknown>;
    clients.push(health);
    const res = await new Promise<{ status: string }>((resolve, reject) => {
      health.check({ service: '' }, (err: Error | null, r: { status: string }) => (err ? reject(err) : resolve(r)));
    });
    assert.equal(res.status, 'SERVING');
  });
});

describe('roles per method without TLS', () => {
  it('checks nothing on a plaintext (insecure) server: there is no certificate to check', async () => {
    const log = pino({ level: 'silent' });
    let ran = 0;
    const probe: Partial<MetadataServiceServer> = {
      listEnvironments: unaryHandler(log, () => {
        ran++;
        return { environments: [] };
      }),
    };
    const server = await startServer({
      listen: '127.0.0.1:0',
      log,
      drainGraceMs: 500,
      services: [{ name: 'baton.v1.MetadataService', definition: MetadataServiceService, implementation: probe as MetadataServiceServer, roles: ROLES }],
    });
    const client = makeClient(MetadataServiceClient, server.address);
    try {
      await unary(client, client.listEnvironments, {});
      assert.equal(ran, 1);
    } finally {
      client.close();
      await server.drain();
    }
  });

  it('refuses to start a service whose roles name a method it does not have', () => {
    assert.throws(
      () =>
        allowedRolesByPath([
          { name: 'baton.v1.MetadataService', definition: MetadataServiceService, roles: { default: ['operator'], methods: { ListTask: ['agent'] } } },
        ]),
      /roles of baton.v1.MetadataService name method 'ListTask', which it does not have/,
    );
  });
});
