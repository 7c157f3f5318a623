import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Metadata, makeGenericClientConstructor, status, type Client, type ServiceError } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { issueCertificate } from './pki';
import { CALLER_RATE_REASON, CallerBudgets, MAX_HELD_REFUSALS, MAX_REFUSAL_HOLD_MS, REFUSED_REQUEST_COST } from './caller-budget';
import { readServiceError } from './errors';
import { startServer, type RunningServer } from './grpc-server';
import { createLogger } from './logger';
import { channelCredentials, type TlsFiles } from './tls';
import { makeTestCertificates } from '../test/helpers/certificates';

const log = createLogger('caller-budget-test', 'silent');

/** A call whose verified certificate has `role` and CN `name` (what peerOf reads). */
const callBy = (role: string, name: string) => ({ getAuthContext: () => ({ sslPeerCertificate: { subject: { CN: name, OU: `baton-${role}` } } }) }) as never;
const plaintext = { getAuthContext: () => ({}) } as never;

describe('CallerBudgets', () => {
  it('admits a burst, then refuses in one line with the time until the next token, held back until then', () => {
    let now = 0;
    const budgets = new CallerBudgets({ requestsPerS: 10, burst: 20, nowMs: () => now });
    const alice = budgets.callerOf(callBy('operator', 'alice'));
    assert.equal(alice, 'operator:alice');
    for (let i = 0; i < 20; i++) assert.equal(budgets.admit('operator:alice'), undefined, `call ${i + 1}`);
    const over = budgets.admit('operator:alice');
    assert.ok(over);
    assert.equal(over.first, true);
    // The refused call counted too: the bucket is one below empty, two tokens (200 ms) from the next call.
    assert.equal(over.holdMs, 200);
    const error = budgets.refusal({ ...over, holdMs: 0 });
    assert.equal(error.code, status.RESOURCE_EXHAUSTED);
    assert.equal(error.reason, CALLER_RATE_REASON);
    assert.equal(error.retryDelayMs, 200);
    assert.equal(
      error.message,
      'cert=alice is over its request budget at this service (10 a second, bursts of 20; a refused request counts as 10); retry in 0.2 s',
    );
    assert.deepEqual(error.metadata, { caller: 'cert=alice', retry_delay_ms: '200' });
    now += 100;
    assert.equal(budgets.refusal(over).retryDelayMs, 100, 'sent after a hold, the delay left then');
    const again = budgets.admit('operator:alice');
    assert.equal(again?.first, false, 'logged once per time over');
    now += 200;
    assert.match(budgets.refusal(again).message, /; retry now$/, 'held until its token was due, it may retry at once');
    now += 200;
    assert.equal(budgets.admit('operator:alice'), undefined, 'admitted once the delay has passed');
    assert.equal(budgets.admit('agent:alice'), undefined, 'another role is another caller');
  });

  it(`charges a refused call ${REFUSED_REQUEST_COST} tokens in all, and keeps counting a caller that does not wait, down to a burst below empty`, () => {
    let now = 0;
    const budgets = new CallerBudgets({ requestsPerS: 10, burst: 20, nowMs: () => now });
    assert.equal(budgets.admit('operator:mallory'), undefined);
    budgets.refused('operator:mallory');
    assert.equal(budgets.admit('operator:mallory'), undefined);
    budgets.refused('operator:mallory');
    assert.ok(budgets.admit('operator:mallory'), 'two refused calls spent the burst of 20');
    const held = Array.from({ length: 1_000 }, () => budgets.admit('operator:mallory'));
    assert.equal(
      held.filter((o) => o && o.holdMs > 0).length,
      MAX_HELD_REFUSALS - 1,
      `at most ${MAX_HELD_REFUSALS} refusals held at a time; the rest are sent at once`,
    );
    assert.ok(held.every((o) => o && o.holdMs <= MAX_REFUSAL_HOLD_MS));
    const over = budgets.admit('operator:mallory');
    assert.ok(over);
    assert.equal(budgets.refusal(over).retryDelayMs, 2_100, 'at the floor, -20 tokens: 2.1 s to one token');
    now += 2_100;
    assert.equal(budgets.admit('operator:mallory'), undefined);
  });

  it('applies to operators and agents, not to services, plaintext callers or a rate of 0', () => {
    const budgets = new CallerBudgets();
    assert.equal(budgets.callerOf(callBy('agent', 'node1')), 'agent:node1');
    assert.equal(budgets.callerOf(callBy('service', 'scheduler')), undefined);
    assert.equal(budgets.callerOf(plaintext), undefined);
    assert.equal(new CallerBudgets({ requestsPerS: 0 }).callerOf(callBy('operator', 'alice')), undefined);
    assert.throws(() => new CallerBudgets({ burst: 0 }), /burst >= 1/);
  });
});

describe('a TLS server with caller budgets', () => {
  const certs = makeTestCertificates();
  const files = (role: 'operator' | 'service', name: string): TlsFiles => {
    const issued = issueCertificate(certs.dir, role, name, { days: 2 });
    return { ca: certs.ca, cert: issued.cert, key: issued.key };
  };
  let server: RunningServer;
  before(async () => {
    server = await startServer({
      listen: '127.0.0.1:0',
      log,
      services: [],
      tls: { ca: certs.ca, cert: certs.serverCert, key: certs.serverKey },
      callerBudget: { requestsPerS: 0.5, burst: 30 },
    });
  });
  after(() => server.drain());

  const Health = makeGenericClientConstructor(healthService, 'Health');
  type HealthClient = Client & { check: (req: unknown, md: Metadata, opts: unknown, cb: (err: ServiceError | null, res?: { status: string }) => void) => void };
  const clientOf = (tls: TlsFiles) => new Health(server.address, channelCredentials(tls)) as unknown as HealthClient;
  const check = (c: HealthClient, service: string) =>
    new Promise<{ err: ServiceError | null; status?: string }>((resolve) =>
      c.check({ service }, new Metadata(), { deadline: Date.now() + 5_000 }, (err, res) => resolve({ err, status: res?.status })),
    );

  it("refuses a caller sending one bad request after another, with a retry delay, while another caller's calls go on", async () => {
    const mallory = clientOf(files('operator', 'mallory'));
    const alice = clientOf(files('operator', 'alice'));
    const scheduler = clientOf(files('service', 'scheduler'));
    try {
      const answers: number[] = [];
      for (let i = 0; i < 10; i++) answers.push((await check(mallory, 'x'.repeat(100_000))).err?.code ?? status.OK);
      // Three bad requests spend a burst of 30 (a token comes back every 2 s); the rest are refused before their 100 KB are decoded.
      assert.deepEqual(answers, [...Array<number>(3).fill(status.INVALID_ARGUMENT), ...Array<number>(7).fill(status.RESOURCE_EXHAUSTED)]);
      const { err } = await check(mallory, '');
      assert.ok(err);
      const report = readServiceError(err);
      assert.equal(report.code, status.RESOURCE_EXHAUSTED);
      assert.equal(report.reason, CALLER_RATE_REASON);
      // A token is due every 2 s; the refusal was held back at most 1 s, so a delay is left.
      assert.match(
        report.message,
        /^cert=mallory is over its request budget at this service \(0\.5 a second, bursts of 30; a refused request counts as 10\); retry in \d+\.\d s$/,
      );
      assert.ok(report.retryDelayMs !== undefined && report.retryDelayMs > 0, `RetryInfo ${report.retryDelayMs}`);
      assert.equal(report.metadata?.caller, 'cert=mallory');
      for (let i = 0; i < 5; i++) assert.equal((await check(alice, '')).status, 'SERVING', 'alice has her own budget');
      for (let i = 0; i < 50; i++) assert.equal((await check(scheduler, '')).status, 'SERVING', 'a service is not limited');
    } finally {
      for (const c of [mallory, alice, scheduler]) c.close();
    }
  });
});
