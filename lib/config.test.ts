import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, resolveTlsConfig, SERVER_CONFIG_PROPERTIES, type ConfigSchema, type ServerConfig } from './config';

const schema: ConfigSchema = {
  type: 'object',
  properties: {
    listen: { type: 'string', default: '127.0.0.1:0', description: 'host:port' },
    'wait-s': { type: 'integer', minimum: 1, default: 60, description: 'seconds to wait' },
  },
  additionalProperties: false,
};

describe('loadConfig', () => {
  it('applies defaults, then the YAML file, then BATON_ variables, then flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-config-'));
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'listen: 0.0.0.0:1\nwait-s: 5\n');
    assert.deepEqual(loadConfig(schema, { argv: [], env: {} }), { listen: '127.0.0.1:0', 'wait-s': 60 });
    assert.deepEqual(loadConfig(schema, { argv: ['--config', file], env: {} }), { listen: '0.0.0.0:1', 'wait-s': 5 });
    assert.deepEqual(loadConfig(schema, { argv: ['--config', file], env: { BATON_WAIT_S: '7' } }), { listen: '0.0.0.0:1', 'wait-s': 7 });
    assert.deepEqual(loadConfig(schema, { argv: ['--config', file, '--wait-s', '9'], env: { BATON_WAIT_S: '7' } }), { listen: '0.0.0.0:1', 'wait-s': 9 });
  });

  it('names the key, its source and what was expected in one line', () => {
    assert.throws(
      () => loadConfig(schema, { argv: [], env: { BATON_WAIT_S: 'soon' } }),
      (err: Error) => err instanceof ConfigError && err.message === 'configuration: wait-s must be integer (seconds to wait) [from environment variable BATON_WAIT_S]',
    );
    assert.throws(() => loadConfig(schema, { argv: ['--wait-s', '0'], env: {} }), /wait-s must be >= 1 .*flag --wait-s/);
    assert.throws(() => loadConfig(schema, { argv: ['--nope', 'x'], env: {} }), (err: Error) => err instanceof ConfigError && /nope/.test(err.message) && !err.message.includes('\n'));
  });

  it('rejects unknown keys in the config file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-config-'));
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'lisen: 1\n');
    assert.throws(() => loadConfig(schema, { argv: ['--config', file], env: {} }), /unknown key 'lisen'/);
  });
});

describe('resolveTlsConfig', () => {
  const server: ConfigSchema = { type: 'object', properties: { ...SERVER_CONFIG_PROPERTIES }, additionalProperties: false };
  const resolveFrom = (argv: string[], env: NodeJS.ProcessEnv = {}) => resolveTlsConfig(loadConfig<ServerConfig>(server, { argv, env }));

  it('refuses to start a server with neither certificates nor insecure, in one line naming what is missing', () => {
    assert.throws(
      () => resolveFrom([]),
      (err: Error) =>
        err instanceof ConfigError &&
        err.message ===
          'configuration: missing tls-cert, tls-key, tls-ca; TLS needs tls-cert, tls-key and tls-ca (make them with `baton pki init` and `baton pki issue`), or set insecure: true (--insecure, BATON_INSECURE=true) for plaintext local development',
    );
  });

  it('gives plaintext with insecure from a flag or BATON_INSECURE, and refuses insecure with certificates', () => {
    assert.deepEqual(resolveFrom(['--insecure']), {});
    assert.deepEqual(resolveFrom([], { BATON_INSECURE: 'true' }), {});
    assert.throws(() => resolveFrom([], { BATON_INSECURE: 'false' }), /missing tls-cert/);
    assert.throws(() => resolveFrom(['--insecure', '--tls-cert', 'a.pem', '--tls-key', 'a.key']), /insecure is true but tls-cert, tls-key are set/);
  });
});
