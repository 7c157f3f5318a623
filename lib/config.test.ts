import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema, ConfigError, loadConfig, resolveTlsConfig, SERVER_CONFIG_PROPERTIES } from './config';

const schema = configSchema({
  listen: { type: 'string', default: '127.0.0.1:0', description: 'host:port' },
  'wait-s': { type: 'integer', minimum: 1, default: 60, description: 'seconds to wait' },
});

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
      (err: Error) =>
        err instanceof ConfigError && err.message === 'configuration: wait-s must be integer (seconds to wait) [from environment variable BATON_WAIT_S]',
    );
    assert.throws(() => loadConfig(schema, { argv: ['--wait-s', '0'], env: {} }), /wait-s must be >= 1 .*flag --wait-s/);
    assert.throws(
      () => loadConfig(schema, { argv: ['--nope', 'x'], env: {} }),
      (err: Error) => err instanceof ConfigError && /nope/.test(err.message) && !err.message.includes('\n'),
    );
  });

  it('checks every address key with the one host:port rule, in one message format', () => {
    const addresses = configSchema(
      {
        listen: { type: 'string', format: 'host-port', description: 'host:port to listen on' },
        targets: { type: 'string', format: 'host-port-list', description: 'where to connect' },
      },
      ['targets'],
    );
    const load = (argv: string[]) => loadConfig(addresses, { argv, env: {} });
    for (const good of ['127.0.0.1:0', 'localhost:65535', '[::1]:50051', '[::]:0', 'scheduler.example.com:443'])
      assert.equal(load(['--targets', 'a:1', '--listen', good]).listen, good);
    for (const good of ['a:1', 'a:1, b:2,[::1]:3', 'dns:///scheduler:50051']) assert.equal(load(['--targets', good]).targets, good);
    for (const bad of ['nope', ':1', 'a:', 'a:65536', '::1:5', '[::1]', 'a b:1', 'a:1,b:2', 'dns:///a:1']) {
      assert.throws(
        () => load(['--targets', 'a:1', '--listen', bad]),
        (err: Error) =>
          err instanceof ConfigError &&
          err.message ===
            `configuration: listen '${bad}' is not host:port (host:port to listen on); expected host:port, the host a name, an IPv4 address or an IPv6 address in brackets ([::1]:50051), the port 0-65535 [from flag --listen]`,
      );
    }
    for (const bad of ['a:1,,b:2', 'dns:///a:1,b:2', 'a', 'a:1,']) {
      assert.throws(
        () => load(['--targets', bad]),
        (err: Error) =>
          err instanceof ConfigError &&
          err.message.startsWith(
            `configuration: targets '${bad}' is not host:port, a comma-separated list of them or dns:///host:port (where to connect); expected host:port, several`,
          ),
      );
    }
  });

  it('types the loaded values from the schema: defaults and required keys always set, the rest optional', () => {
    const typed = configSchema(
      {
        a: { type: 'integer', default: 1, description: 'a' },
        b: { type: 'string', description: 'b' },
        c: { type: 'string', enum: ['x', 'y'], description: 'c' },
      },
      ['b'],
    );
    const config = loadConfig(typed, { argv: ['--b', 'B', '--c', 'y'], env: {} });
    // Compile-time checks: `a` is a number and `b` a string without a guard, `c` one of the enum.
    const sum: number = config.a + 1;
    const b: string = config.b;
    const c: 'x' | 'y' | undefined = config.c;
    assert.deepEqual({ sum, b, c }, { sum: 2, b: 'B', c: 'y' });
  });

  it('rejects unknown keys in the config file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-config-'));
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'lisen: 1\n');
    assert.throws(() => loadConfig(schema, { argv: ['--config', file], env: {} }), /unknown key 'lisen'/);
  });
});

describe('resolveTlsConfig', () => {
  const server = configSchema({ ...SERVER_CONFIG_PROPERTIES });
  const resolveFrom = (argv: string[], env: NodeJS.ProcessEnv = {}) => resolveTlsConfig(loadConfig(server, { argv, env }));

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
