import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../lib/config';
import { AGENT_CONFIG_SCHEMA, ROOT_STATE_DIR, resolveAgentOptions, type AgentConfig } from './agent-options';

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
});
