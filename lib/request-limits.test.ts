import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { credentials, makeGenericClientConstructor, status, type Client, type ServiceDefinition, type ServiceError } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { AgentGatewayServiceService } from '../gen/baton/v1/agent_gateway_service';
import { MetadataServiceService } from '../gen/baton/v1/metadata_service';
import { ResultsServiceService } from '../gen/baton/v1/results_service';
import { SchedulerServiceService } from '../gen/baton/v1/scheduler_service';
import { startServer, type RunningServer } from './grpc-server';
import { LIMITS, LIMIT_EXCEEDED_REASON, structDepth } from './limits';
import { createLogger } from './logger';
import { packageRoot } from './package-root';
import { limitProblem, REQUEST_LIMITS } from './request-limits';

const log = createLogger('request-limits-test', 'silent');

describe('REQUEST_LIMITS', () => {
  it('has a row for every method a Baton server serves, and no row for a method that does not exist', () => {
    const definitions: ServiceDefinition[] = [
      MetadataServiceService,
      ResultsServiceService,
      SchedulerServiceService,
      AgentGatewayServiceService,
      healthService,
    ];
    const served = definitions
      .flatMap((d) => Object.values(d).map((m) => m.path))
      .concat(['v1', 'v1alpha'].map((v) => `/grpc.reflection.${v}.ServerReflection/ServerReflectionInfo`));
    assert.deepEqual([...REQUEST_LIMITS.keys()].sort(), [...new Set(served)].sort());
  });

  it('names every limit in docs/security.md under Limits', () => {
    const doc = readFileSync(join(packageRoot(), 'docs', 'security.md'), 'utf8');
    const section = doc.slice(doc.indexOf('## Limits'));
    const missing = Object.keys(LIMITS).filter((k) => !section.includes(`\`${k}\``));
    assert.deepEqual(missing, [], 'every row of LIMITS is listed in docs/security.md "Limits"');
  });

  it('refuses a value over its limit naming the field, the length and the limit, quoting only a prefix', () => {
    const err = limitProblem('/baton.v1.SchedulerService/RunTask', { task: 'a'.repeat(1024 * 1024), environment: '', inputJson: '', runAs: '', requestId: '' });
    assert.ok(err);
    assert.equal(err.reason, LIMIT_EXCEEDED_REASON);
    assert.equal(
      err.message,
      `task 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…' (1048576 characters) is 1048576 characters long; at most 256 characters are accepted (expected a task name <module>::<task>)`,
    );
    assert.deepEqual(err.metadata, { field: 'task' });
  });

  it('counts a list before looking at its entries, and names the list', () => {
    const identities = Array.from({ length: LIMITS.filterIdentities.max + 1 }, () => 'x'.repeat(LIMITS.filterTerm.max + 1));
    const err = limitProblem('/baton.v1.SchedulerService/DiscoverNodes', { filter: { identities, classes: [], agents: [], compound: [], facts: [] } });
    assert.ok(err);
    assert.equal(err.message, `filter.identities has ${LIMITS.filterIdentities.max + 1} entries; at most ${LIMITS.filterIdentities.max} entries are accepted`);
  });

  it('checks every message of an agent stream by its kind', () => {
    const deep: Record<string, unknown> = {};
    let at = deep;
    for (let i = 0; i < 100; i++) {
      const next: Record<string, unknown> = {};
      at.x = next;
      at = next;
    }
    const err = limitProblem('/baton.v1.AgentGatewayService/Connect', {
      traceContext: {},
      message: { $case: 'factsUpdate', value: { facts: deep, classes: [] } },
    });
    assert.ok(err);
    assert.equal(
      err.message,
      `facts_update.facts nests more than ${LIMITS.structDepth.max} levels deep; at most ${LIMITS.structDepth.max} levels are accepted`,
    );
    assert.equal(
      limitProblem('/baton.v1.AgentGatewayService/Connect', { traceContext: { traceparent: '00-x' }, message: { $case: 'heartbeat', value: {} } }),
      undefined,
    );
  });

  it('structDepth counts levels of objects and arrays and stops early', () => {
    assert.equal(structDepth('x'), 0);
    assert.equal(structDepth({ a: 1 }), 1);
    assert.equal(structDepth({ a: [{ b: 1 }] }), 3);
    assert.equal(structDepth([[[[[]]]]], 2), 2);
  });
});

describe('a server with the limits interceptor', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ listen: '127.0.0.1:0', log, services: [] });
  });
  after(() => server.drain());

  it('answers a health check for a 1 MiB service name with INVALID_ARGUMENT, and the next check on the connection', async () => {
    const Health = makeGenericClientConstructor(healthService, 'Health');
    const health = new Health(server.address, credentials.createInsecure()) as unknown as Client & {
      check: (req: unknown, opts: unknown, cb: (err: ServiceError | null, res?: { status: string }) => void) => void;
    };
    const check = (service: string) =>
      new Promise<{ err: ServiceError | null; status?: string }>((resolve) =>
        health.check({ service }, { deadline: Date.now() + 5_000 }, (err, res) => resolve({ err, status: res?.status })),
      );
    const start = performance.now();
    const { err } = await check('x'.repeat(1024 * 1024));
    assert.equal(err?.code, status.INVALID_ARGUMENT, err?.details);
    assert.match(err?.details ?? '', /^service 'x{40}…' \(1048576 characters\) is 1048576 characters long; at most 256 characters are accepted$/);
    assert.equal((await check('')).status, 'SERVING');
    assert.ok(performance.now() - start < 1_000, `answered in ${Math.round(performance.now() - start)} ms`);
    health.close();
  });
});
