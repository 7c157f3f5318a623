import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, type ServerInterceptor, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { ListEnvironmentsResponse, MetadataServiceClient, MetadataServiceService, type MetadataServiceServer } from '../gen/baton/v1/metadata_service';
import { makeClient, unary } from '../lib/grpc-client';
import { startServer } from '../lib/grpc-server';
import { createLogger } from '../lib/logger';
import { allowedRolesByPath, roleInterceptor } from '../lib/method-roles';
import { peerOf } from '../lib/peer-identity';
import { createCa, issueCertificate } from '../lib/pki';
import { serverCredentials, type TlsFiles } from '../lib/tls';

/**
 * Cost of the per-method role check (lib/method-roles.ts) on a mutual-TLS server:
 * median µs per unary call over one channel (CALLS sequential calls, RUNS runs) against
 * Baton's startServer (role interceptor, reading the peer certificate for every call) and, as
 * the baseline measured in the same run, a bare grpc-js server with the same credentials and
 * handler and no interceptor; plus µs per peerOf (the certificate read the check does).
 * Run: `npx tsc -p . && npm run bench -- role-check-bench`.
 */

const RUNS = 7;
const CALLS = 2_000;
const log = createLogger('bench', 'silent');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const handler = (_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<ListEnvironmentsResponse>): void =>
  callback(null, ListEnvironmentsResponse.fromPartial({}));
const implementation = { listEnvironments: handler } as unknown as MetadataServiceServer;

/** µs per call of CALLS sequential ListEnvironments on `client`. */
async function oneRunUs(c: MetadataServiceClient): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) await unary(c, c.listEnvironments, {});
  return Number(process.hrtime.bigint() - t0) / 1e3 / CALLS;
}

/** Median µs per call on each address, the runs interleaved so that machine load hits all alike. */
async function perCallUs(addresses: string[], client: TlsFiles): Promise<number[]> {
  const clients = addresses.map((a) => makeClient(MetadataServiceClient, a, client));
  try {
    for (const c of clients) for (let i = 0; i < CALLS / 4; i++) await unary(c, c.listEnvironments, {});
    const runs: number[][] = addresses.map(() => []);
    for (let r = 0; r < RUNS; r++) for (const [i, c] of clients.entries()) runs[i].push(await oneRunUs(c));
    return runs.map(median);
  } finally {
    for (const c of clients) c.close();
  }
}

/** A bare grpc-js server with `implementation` over mTLS, with the given interceptors. */
async function bareServer(tls: TlsFiles, interceptors: ServerInterceptor[]): Promise<{ server: Server; address: string }> {
  const server = new Server({ interceptors });
  server.addService(MetadataServiceService, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', serverCredentials(tls), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, address: `127.0.0.1:${port}` };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-role-bench-'));
  try {
    createCa(dir, { days: 2 });
    const service = issueCertificate(dir, 'service', 'metadata', { days: 2 });
    const operator = issueCertificate(dir, 'operator', 'alice', { days: 2 });

    const roles = { default: ['operator', 'service'] } as const;
    const bare = await bareServer(service, []);
    const intercepted = await bareServer(service, [
      roleInterceptor(allowedRolesByPath([{ name: 'baton.v1.MetadataService', definition: MetadataServiceService, roles }]), log),
    ]);
    const baton = await startServer({
      listen: '127.0.0.1:0',
      log,
      tls: service,
      drainGraceMs: 500,
      services: [{ name: 'baton.v1.MetadataService', definition: MetadataServiceService, implementation, roles }],
      // Each call still goes through the caller's budget, one large enough for every call made here.
      callerBudget: { requestsPerS: 1e9, burst: 1e9 },
    });

    const [baselineUs, interceptedUs, batonUs] = await perCallUs([bare.address, intercepted.address, baton.address], operator);
    console.log(`unary call over mTLS, median of ${RUNS} interleaved runs of ${CALLS} sequential calls:`);
    console.log(`  bare grpc-js server (baseline):         ${baselineUs.toFixed(1)} µs/call`);
    console.log(`  bare server + role interceptor:         ${interceptedUs.toFixed(1)} µs/call  ratio ${(interceptedUs / baselineUs).toFixed(2)}x`);
    console.log(
      `  startServer (roles, health, reflection, keepalive, size limits): ${batonUs.toFixed(1)} µs/call  ratio ${(batonUs / baselineUs).toFixed(2)}x`,
    );

    // peerOf alone, on a real authenticated call's auth context.
    const contexts: Array<ReturnType<ServerUnaryCall<unknown, unknown>['getAuthContext']>> = [];
    const probe = new Server();
    probe.addService(MetadataServiceService, {
      listEnvironments: (call: ServerUnaryCall<unknown, unknown>, cb: sendUnaryData<ListEnvironmentsResponse>) => {
        contexts.push(call.getAuthContext());
        cb(null, ListEnvironmentsResponse.fromPartial({}));
      },
    });
    const probePort = await new Promise<number>((resolve, reject) =>
      probe.bindAsync('127.0.0.1:0', serverCredentials(service), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const pc = makeClient(MetadataServiceClient, `127.0.0.1:${probePort}`, operator);
    await unary(pc, pc.listEnvironments, {});
    pc.close();
    const ctx = contexts[0];
    const call = { getAuthContext: () => ctx };
    const iterations = 200_000;
    const runs: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < iterations; i++) peerOf(call);
      runs.push(Number(process.hrtime.bigint() - t0) / 1e3 / iterations);
    }
    console.log(`peerOf on a parsed peer certificate: ${median(runs).toFixed(3)} µs/call`);

    bare.server.forceShutdown();
    intercepted.server.forceShutdown();
    probe.forceShutdown();
    await baton.drain();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
