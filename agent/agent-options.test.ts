import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../lib/config';
import { ConnectRequest } from '../gen/baton/v1/agent_gateway_service';
import { SERVER_MAX_RECEIVE_MESSAGE_BYTES } from '../lib/grpc-server';
import { AGENT_CONFIG_SCHEMA, ROOT_STATE_DIR, resolveAgentOptions, schedulerTargets } from './agent-options';
import { makeTestCertificates } from '../test/helpers/certificates';
import { exitedResult } from './node-result';
import { MAX_OUTPUT_BYTES_CEILING } from './task-runner';

/** The one-line message of a scheduler-address that breaks the host:port rule (lib/host-port.ts). */
const NOT_SCHEDULER_ADDRESS =
  /configuration: scheduler-address '[^']*' is not host:port, a comma-separated list of them or dns:\/\/\/host:port \(host:port of the scheduler, .*\); expected host:port, several separated by commas, or one dns:\/\/\/host:port; the host a name/;

function load(argv: string[], env: NodeJS.ProcessEnv = {}) {
  return resolveAgentOptions(loadConfig(AGENT_CONFIG_SCHEMA, { argv, env }), env);
}

describe('agent options', () => {
  it('defaults the identity to the host name and the directories to the state directory', () => {
    const o = load(['--insecure', '--scheduler-address', 'sched.example.com:7000'], { XDG_STATE_HOME: '/srv/state' });
    assert.equal(o.identity, hostname());
    const state = process.getuid?.() === 0 ? ROOT_STATE_DIR : '/srv/state/baton';
    assert.equal(o.cacheDir, join(state, 'cache'));
    assert.equal(o.spoolDir, join(state, 'spool'));
    assert.equal(o.heartbeatIntervalS, 15);
    assert.deepEqual(o.classes, []);
    assert.equal(o.metadataAddress, undefined);
  });

  it('splits classes on commas and accepts bracketed IPv6 addresses', () => {
    const o = load(['--insecure', '--scheduler-address', '[::1]:7000', '--classes', 'role::web, profile::base ,', '--metadata-address', '10.0.0.1:7001']);
    assert.deepEqual(o.classes, ['role::web', 'profile::base']);
    assert.equal(o.schedulerAddress, '[::1]:7000');
    assert.equal(o.metadataAddress, '10.0.0.1:7001');
  });

  it('takes several scheduler addresses as a comma-separated list, or one dns:/// target', () => {
    assert.deepEqual(schedulerTargets(load(['--insecure', '--scheduler-address', 'a.example:7000, b.example:7000,[::1]:7001']).schedulerAddress), [
      'a.example:7000',
      'b.example:7000',
      '[::1]:7001',
    ]);
    assert.deepEqual(schedulerTargets(load(['--insecure', '--scheduler-address', 'dns:///scheduler.baton.svc:7000']).schedulerAddress), [
      'dns:///scheduler.baton.svc:7000',
    ]);
    assert.throws(() => load(['--insecure', '--scheduler-address', 'a:1,,b:2']), NOT_SCHEDULER_ADDRESS);
    assert.throws(() => load(['--insecure', '--scheduler-address', 'dns:///a:1,b:2']), NOT_SCHEDULER_ADDRESS);
  });

  it('rejects a malformed address or identity in one line naming the key', () => {
    assert.throws(() => load(['--insecure', '--scheduler-address', 'no-port']), NOT_SCHEDULER_ADDRESS);
    assert.throws(() => load(['--insecure', '--scheduler-address', 'a:1', '--identity=-bad']), /configuration: identity must match pattern/);
    assert.throws(() => load([], {}), /missing required key 'scheduler-address'/);
  });

  it('needs its certificate, key and CA unless insecure, and refuses both at once', () => {
    const certs = makeTestCertificates();
    try {
      assert.throws(
        () => load(['--scheduler-address', 'a:1']),
        (err: Error) =>
          err instanceof ConfigError &&
          /^configuration: missing tls-cert, tls-key, tls-ca; .*baton pki init.*insecure: true/.test(err.message) &&
          !err.message.includes('\n'),
      );
      assert.throws(() => load(['--scheduler-address', 'a:1', '--tls-cert', certs.clientCert]), /configuration: missing tls-key, tls-ca;/);
      assert.throws(
        () => load(['--scheduler-address', 'a:1', '--insecure', '--tls-ca', certs.ca]),
        /configuration: insecure is true but tls-ca is set; expected either certificates \(tls-cert, tls-key, tls-ca\) or insecure, not both$/,
      );
      assert.throws(
        () => load(['--scheduler-address', 'a:1', '--tls-cert', certs.clientCert, '--tls-key', '/nonexistent/k.pem', '--tls-ca', certs.ca]),
        /configuration: tls-key '\/nonexistent\/k.pem' cannot be read \(ENOENT\); expected a PEM file$/,
      );
      const tls = { cert: certs.clientCert, key: certs.clientKey, ca: certs.ca };
      const withCerts = ['--scheduler-address', 'a:1', '--tls-cert', tls.cert, '--tls-key', tls.key, '--tls-ca', tls.ca];
      assert.deepEqual(load([...withCerts, '--identity', 'node1']).tls, tls);
      // The certificate names node1: an agent calling itself anything else is refused at start.
      assert.throws(
        () => load([...withCerts, '--identity', 'node2']),
        /configuration: tls-cert '.*': certificate 'node1' is for another node, but this agent's identity is 'node2'; issue one with `baton pki issue agent node2` or set --identity$/,
      );
      assert.throws(
        () => load(['--scheduler-address', 'a:1', '--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-ca', tls.ca, '--identity', 'localhost']),
        /certificate 'localhost' is not an agent certificate \(OU=baton-agent\), but this agent's identity is 'localhost'/,
      );
      assert.deepEqual(load(['--scheduler-address', 'a:1'], { BATON_INSECURE: 'true' }).tls, {});
    } finally {
      rmSync(certs.dir, { recursive: true, force: true });
    }
  });

  it('refuses an output cap whose result could not fit in a message the scheduler accepts', () => {
    assert.equal(
      load(['--insecure', '--scheduler-address', 'a:1', '--max-output-bytes', String(MAX_OUTPUT_BYTES_CEILING)]).maxOutputBytes,
      MAX_OUTPUT_BYTES_CEILING,
    );
    assert.throws(
      () => load(['--insecure', '--scheduler-address', 'a:1', '--max-output-bytes', String(MAX_OUTPUT_BYTES_CEILING + 1)]),
      /configuration: max-output-bytes must be <= 2097152/,
    );
  });

  it('keeps the largest result at the output cap under the scheduler message limit', () => {
    // The worst case: stdout a JSON object of small numbers (each 2 bytes of text, ~11 bytes as a
    // protobuf Value), so the parsed value is far larger than the text, plus a full stderr.
    const cap = MAX_OUTPUT_BYTES_CEILING;
    const stdout = `{"a":[${'0,'.repeat((cap - 10) / 2)}0]}`;
    assert.ok(stdout.length <= cap);
    const id = { host: 'node1', taskId: 'f'.repeat(32), task: 'acme::big', caller: 'cert=alice' };
    const result = exitedResult(id, {
      stdout: Buffer.from(stdout),
      stderr: 'e'.repeat(cap),
      exitcode: 0,
      signal: null,
      startTime: new Date(),
      endTime: new Date(),
      timeoutS: 0,
    });
    assert.ok(Array.isArray(result.value?.a), 'the JSON object is the value');
    const bytes = ConnectRequest.encode({ traceContext: {}, message: { $case: 'taskFinished', value: { result } } }).finish().length;
    assert.ok(bytes < SERVER_MAX_RECEIVE_MESSAGE_BYTES, `${bytes} bytes`);
  });
});
