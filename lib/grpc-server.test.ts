import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { credentials, loadPackageDefinition, status, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { MetadataServiceClient, MetadataServiceService, type MetadataServiceServer } from '../gen/baton/v1/metadata_service';
import { InvalidArgumentError, NotFoundError, readServiceError } from './errors';
import { makeClient, unary } from './grpc-client';
import { startServer, unaryHandler, type RunningServer } from './grpc-server';
import { createLogger } from './logger';
import { packageRoot } from './package-root';
import { makeTestCertificates, type TestCertificates } from '../test/helpers/certificates';
import { healthStatus } from '../test/helpers/health';

const log = createLogger('test', 'silent');

/** A tiny MetadataService whose handlers exercise the error boundary (this tests lib/, not the service). */
function boundaryProbe(): Partial<MetadataServiceServer> {
  return {
    getTask: unaryHandler(log, (req) => {
      if (req.task === 'missing') throw new NotFoundError('TASK_NOT_FOUND', `task '${req.task}' not found`);
      if (req.task === 'bad') throw new InvalidArgumentError('invalid input', [{ field: 'message', description: 'expects a String value, got Integer' }]);
      if (req.task === 'boom') throw new Error('secret internal detail');
      return { task: undefined };
    }),
  };
}

/** Opens a grpc.reflection.v1 stream to a plaintext server, sends one request and returns the first answer. */
async function reflect(address: string, request: Record<string, unknown>): Promise<Record<string, unknown>> {
  const reflectionProto = join(packageRoot(), 'node_modules', '@grpc', 'reflection', 'build', 'proto', 'grpc', 'reflection', 'v1', 'reflection.proto');
  const pkg = loadPackageDefinition(loadSync(reflectionProto)) as unknown as {
    grpc: {
      reflection: {
        v1: {
          ServerReflection: new (
            addr: string,
            creds: ReturnType<typeof credentials.createInsecure>,
          ) => Client & { serverReflectionInfo(): NodeJS.ReadWriteStream & { write(m: unknown): boolean; end(): void } };
        };
      };
    };
  };
  const refl = new pkg.grpc.reflection.v1.ServerReflection(address, credentials.createInsecure());
  const call = refl.serverReflectionInfo();
  const answer = new Promise<Record<string, unknown>>((resolve, reject) => {
    call.on('data', resolve);
    call.on('error', reject);
  });
  call.write(request);
  try {
    return await answer;
  } finally {
    call.end();
    refl.close();
  }
}

describe('startServer', () => {
  let server: RunningServer;
  let client: MetadataServiceClient;

  before(async () => {
    server = await startServer({
      listen: '127.0.0.1:0',
      log,
      services: [{ name: 'baton.v1.MetadataService', definition: MetadataServiceService, implementation: boundaryProbe() as MetadataServiceServer }],
      drainGraceMs: 500,
    });
    client = makeClient(MetadataServiceClient, server.address);
  });
  after(async () => {
    client.close();
    await server.drain();
  });

  it('binds a free port on 127.0.0.1', () => {
    assert.match(server.address, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(server.address, '127.0.0.1:0');
  });

  it('maps domain errors to status codes with google.rpc details', async () => {
    const notFound = await unary(client, client.getTask, { environment: '', task: 'missing' }).catch((e: ServiceError) => e);
    assert.equal((notFound as ServiceError).code, status.NOT_FOUND);
    assert.deepEqual(readServiceError(notFound as ServiceError), {
      code: status.NOT_FOUND,
      message: "task 'missing' not found",
      reason: 'TASK_NOT_FOUND',
      violations: [],
    });

    const bad = await unary(client, client.getTask, { environment: '', task: 'bad' }).catch((e: ServiceError) => e);
    const report = readServiceError(bad as ServiceError);
    assert.equal(report.code, status.INVALID_ARGUMENT);
    assert.deepEqual(report.violations, [{ field: 'message', description: 'expects a String value, got Integer' }]);
  });

  it('never leaks an unexpected error: INTERNAL with a generic message', async () => {
    const err = (await unary(client, client.getTask, { environment: '', task: 'boom' }).catch((e: ServiceError) => e)) as ServiceError;
    assert.equal(err.code, status.INTERNAL);
    assert.doesNotMatch(err.details, /secret/);
  });

  it('answers gRPC health checks, overall and per service', async () => {
    assert.equal(await healthStatus(server.address, ''), 'SERVING');
    assert.equal(await healthStatus(server.address, 'baton.v1.MetadataService'), 'SERVING');
    await assert.rejects(healthStatus(server.address, 'baton.v1.Nope'), (e: ServiceError) => e.code === status.NOT_FOUND);
  });

  it('offers reflection listing the services it serves, health included', async () => {
    const answer = (await reflect(server.address, { listServices: '' })) as { listServicesResponse: { service: Array<{ name: string }> } };
    const names = answer.listServicesResponse.service.map((s) => s.name).sort();
    assert.deepEqual(names, ['baton.v1.MetadataService', 'grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection']);
  });

  it('reflects each proto file under its own name with its imports (the @grpc/reflection bug)', async () => {
    const answer = (await reflect(server.address, { fileContainingSymbol: 'baton.v1.MetadataService' })) as {
      fileDescriptorResponse: { fileDescriptorProto: Buffer[] };
    };
    const files = answer.fileDescriptorResponse.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
    assert.equal(files[0].name, 'baton/v1/metadata_service.proto');
    assert.ok(files[0].dependency.includes('baton/v1/task.proto'), files[0].dependency.join(','));
    // Every import is in the answer, down to the well-known types, so a client can link the schema.
    const names = new Set(files.map((f) => f.name));
    for (const f of files) for (const dep of f.dependency) assert.ok(names.has(dep), `${f.name} imports ${dep}, which is missing`);
  });

  it('answers NOT_FOUND in the reflection stream for an unknown symbol', async () => {
    const answer = (await reflect(server.address, { fileContainingSymbol: 'baton.v1.Nope' })) as { errorResponse: { errorCode: number } };
    assert.equal(answer.errorResponse.errorCode, status.NOT_FOUND);
  });
});

describe('startServer with a health listener', () => {
  let certs: TestCertificates;
  let server: RunningServer;
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  let started: () => void = () => {};
  const holding = new Promise<void>((resolve) => {
    started = resolve;
  });

  before(async () => {
    certs = makeTestCertificates();
    server = await startServer({
      listen: '127.0.0.1:0',
      healthListen: '127.0.0.1:0',
      log,
      tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca },
      services: [
        {
          name: 'baton.v1.MetadataService',
          definition: MetadataServiceService,
          // A call that lasts until the test releases it keeps a drain going.
          implementation: {
            getTask: unaryHandler(log, async () => {
              started();
              await held;
              return { task: undefined };
            }),
          },
        },
      ],
      drainGraceMs: 30_000,
    });
  });
  after(async () => {
    release();
    await server.drain();
    rmSync(certs.dir, { recursive: true, force: true });
  });

  it('answers health checks in plaintext on its own port while the main port asks for TLS', async () => {
    assert.match(server.healthAddress ?? '', /^127\.0\.0\.1:\d+$/);
    assert.notEqual(server.healthAddress, server.address);
    assert.equal(await healthStatus(server.healthAddress!, ''), 'SERVING');
    assert.equal(await healthStatus(server.healthAddress!, 'baton.v1.MetadataService'), 'SERVING');
    await assert.rejects(healthStatus(server.healthAddress!, 'baton.v1.Nope'), (e: ServiceError) => e.code === status.NOT_FOUND);
    // The main port is TLS only: a plaintext health check there fails.
    await assert.rejects(healthStatus(server.address, ''), (e: ServiceError) => e.code === status.UNAVAILABLE);
  });

  it('serves nothing but health: no Baton service, no reflection', async () => {
    const client = makeClient(MetadataServiceClient, server.healthAddress!);
    try {
      await assert.rejects(unary(client, client.getTask, { environment: '', task: 'x' }), (e: ServiceError) => e.code === status.UNIMPLEMENTED);
    } finally {
      client.close();
    }
    await assert.rejects(reflect(server.healthAddress!, { listServices: '' }), (e: ServiceError) => e.code === status.UNIMPLEMENTED);
  });

  it('answers NOT_SERVING while the server drains, then closes', async () => {
    const client = makeClient(MetadataServiceClient, server.address, { cert: certs.clientCert, key: certs.clientKey, ca: certs.ca });
    const call = unary(client, client.getTask, { environment: '', task: 'x' });
    await holding;
    const drained = server.drain();
    assert.equal(await healthStatus(server.healthAddress!, ''), 'NOT_SERVING');
    assert.equal(await healthStatus(server.healthAddress!, 'baton.v1.MetadataService'), 'NOT_SERVING');
    release();
    await call;
    await drained;
    client.close();
    await assert.rejects(healthStatus(server.healthAddress!, ''), (e: ServiceError) => e.code === status.UNAVAILABLE);
  });
});

describe('makeClient', () => {
  it('retries UNAVAILABLE until a server that starts late answers', async () => {
    const { freePort } = await import('./free-port');
    const port = await freePort();
    const client = makeClient(MetadataServiceClient, `127.0.0.1:${port}`);
    const pending = unary(client, client.getTask, { environment: '', task: 'missing' }, { deadlineMs: 8000 }).catch((e: ServiceError) => e);
    // The first attempt finds nothing listening; the server comes up while the client backs off.
    await new Promise((r) => setTimeout(r, 150));
    const late = await startServer({
      listen: `127.0.0.1:${port}`,
      log,
      services: [{ name: 'baton.v1.MetadataService', definition: MetadataServiceService, implementation: boundaryProbe() as MetadataServiceServer }],
      drainGraceMs: 200,
    });
    const err = (await pending) as ServiceError;
    assert.equal(err.code, status.NOT_FOUND, err.message);
    client.close();
    await late.drain();
  });
});
