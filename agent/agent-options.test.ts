import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../lib/config';
import { ConnectRequest } from '../gen/baton/v1/agent_gateway_service';
import { SERVER_MAX_RECEIVE_MESSAGE_BYTES } from '../lib/grpc-server';
import { AGENT_CONFIG_SCHEMA, ROOT_STATE_DIR, resolveAgentOptions, type AgentConfig } from './agent-options';
import { exitedResult } from './node-result';
import { MAX_OUTPUT_BYTES_CEILING } from './task-runner';

function load(argv: string[], env: NodeJS.ProcessEnv = {}) {
  return resolveAgentOptions(loadConfig<AgentConfig>(AGENT_CONFIG_SCHEMA, { argv, env }), env);
}

describe('agent options', () => {
  it('defaults the identity to the host name and the directories to the state directory', () => {
    const o = load(['--scheduler-address', 'sched.example.com:7000'], { XDG_STATE_HOME: '/srv/state' });
    assert.equal(o.identity, hostname());
    const state = process.getuid?.() === 0 ? ROOT_STATE_DIR : '/srv/state/baton';
    assert.equal(o.cacheDir, join(state, 'cache'));
    assert.equal(o.spoolDir, join(state, 'spool'));
    assert.equal(o.heartbeatIntervalS, 15);
    assert.deepEqual(o.classes, []);
    assert.equal(o.metadataAddress, undefined);
  });

  it('splits classes on commas and accepts bracketed IPv6 addresses', () => {
    const o = load(['--scheduler-address', '[::1]:7000', '--classes', 'role::web, profile::base ,', '--metadata-address', '10.0.0.1:7001']);
    assert.deepEqual(o.classes, ['role::web', 'profile::base']);
    assert.equal(o.schedulerAddress, '[::1]:7000');
    assert.equal(o.metadataAddress, '10.0.0.1:7001');
  });

  it('rejects a malformed address, identity or TLS pair in one line naming the key', () => {
    assert.throws(() => load(['--scheduler-address', 'no-port']), /configuration: scheduler-address must match pattern/);
    assert.throws(() => load(['--scheduler-address', 'a:1', '--identity=-bad']), /configuration: identity must match pattern/);
    assert.throws(() => load(['--scheduler-address', 'a:1', '--tls-cert', 'c.pem']), (err: Error) => err instanceof ConfigError && err.message === 'configuration: tls-cert is set but tls-key is not');
    assert.throws(() => load([], {}), /missing required key 'scheduler-address'/);
  });

  it('refuses an output cap whose result could not fit in a message the scheduler accepts', () => {
    assert.equal(load(['--scheduler-address', 'a:1', '--max-output-bytes', String(MAX_OUTPUT_BYTES_CEILING)]).maxOutputBytes, MAX_OUTPUT_BYTES_CEILING);
    assert.throws(() => load(['--scheduler-address', 'a:1', '--max-output-bytes', String(MAX_OUTPUT_BYTES_CEILING + 1)]), /configuration: max-output-bytes must be <= 2097152/);
  });

  it('keeps the largest result at the output cap under the scheduler message limit', () => {
    // The worst case: stdout a JSON object of small numbers (each 2 bytes of text, ~11 bytes as a
    // protobuf Value), so the parsed value is far larger than the text, plus a full stderr.
    const cap = MAX_OUTPUT_BYTES_CEILING;
    const stdout = `{"a":[${'0,'.repeat((cap - 10) / 2)}0]}`;
    assert.ok(stdout.length <= cap);
    const id = { host: 'node1', taskId: 'f'.repeat(32), task: 'acme::big', caller: 'cert=alice' };
    const result = exitedResult(id, { stdout: Buffer.from(stdout), stderr: 'e'.repeat(cap), exitcode: 0, signal: null, startTime: new Date(), endTime: new Date(), timeoutS: 0 });
    assert.ok(Array.isArray(result.value?.a), 'the JSON object is the value');
    const bytes = ConnectRequest.encode({ traceContext: {}, message: { $case: 'taskFinished', value: { result } } }).finish().length;
    assert.ok(bytes < SERVER_MAX_RECEIVE_MESSAGE_BYTES, `${bytes} bytes`);
  });
});
