import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { makeTestCertificates } from '../test/helpers/certificates';
import { issueCertificate } from '../lib/pki';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Clients, connectionSettings } from './connection';

describe('Clients.callerId', () => {
  it('is cert=<CN> of the client certificate with TLS, as the services record it (lib/peer-identity.ts)', () => {
    const certs = makeTestCertificates();
    const alice = issueCertificate(certs.dir, 'operator', 'alice', { days: 2 });
    const clients = new Clients({ tlsCa: alice.ca, tlsCert: alice.cert, tlsKey: alice.key });
    assert.equal(clients.callerId(), 'cert=alice');
  });
});

describe('Clients.address', () => {
  it('takes host:port by the same rule as the services, IPv6 in brackets, and names a bad one in one line', () => {
    assert.equal(new Clients({ scheduler: '[::1]:50051' }).address('scheduler'), '[::1]:50051');
    assert.throws(
      () => new Clients({ scheduler: 'sched.example.com' }).address('scheduler'),
      (err: Error) =>
        err.message ===
        "scheduler address 'sched.example.com' (from flag --scheduler) is not host:port; expected host:port, the host a name, an IPv4 address or an IPv6 address in brackets ([::1]:50051), the port 0-65535",
    );
  });
});

describe('connectionSettings', () => {
  const withEnv = (env: Record<string, string>, fn: () => void) => {
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      fn();
    } finally {
      for (const k of Object.keys(env)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  };

  it("uses a running baton dev's record as a whole, and not at all once an address is set elsewhere", () => {
    const state = mkdtempSync(join(tmpdir(), 'baton-records-'));
    const dir = join(state, 'baton', 'dev');
    mkdirSync(dir, { recursive: true });
    // This process stands in for the stack: its pid is alive.
    const record = {
      pid: process.pid,
      started: new Date().toISOString(),
      scheduler: '127.0.0.1:1',
      metadata: '127.0.0.1:2',
      results: '127.0.0.1:3',
      'tls-ca': '/dev/ca.pem',
      'tls-cert': '/dev/alice.pem',
      'tls-key': '/dev/alice.key',
    };
    writeFileSync(join(dir, `${process.pid}.json`), JSON.stringify(record));
    const config = join(state, 'config.yaml');
    writeFileSync(config, 'scheduler: 10.0.0.1:7411\nmetadata: 10.0.0.1:7412\nresults: 10.0.0.1:7413\n');
    withEnv({ XDG_STATE_HOME: state, XDG_CONFIG_HOME: state }, () => {
      const whole = connectionSettings({});
      assert.equal(whole.stack?.pid, process.pid);
      assert.equal(whole.settings.scheduler.value, '127.0.0.1:1');
      assert.equal(whole.settings['tls-cert'].value, '/dev/alice.pem');
      // A TLS flag still replaces one file of the stack's (to act as another operator).
      assert.equal(connectionSettings({ tlsCert: '/bob.pem' }).settings['tls-cert'].value, '/bob.pem');
    });
    withEnv({ XDG_STATE_HOME: state, BATON_CONFIG: config }, () => {
      const elsewhere = connectionSettings({});
      assert.equal(elsewhere.stack, undefined);
      assert.equal(elsewhere.settings.scheduler.value, '10.0.0.1:7411');
      assert.equal(elsewhere.settings['tls-cert'].value, undefined, "the stack's TLS files are not mixed with the config file's addresses");
    });
    rmSync(state, { recursive: true, force: true });
  });
});
