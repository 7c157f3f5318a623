import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, configSchema, loadConfig, REDIS_CONFIG_PROPERTIES } from './config';
import { parseRedisUrl, REDIS_URL_EXPECTED } from './redis-url';

describe('redis-url', () => {
  it('reads one server as its URL, unchanged', () => {
    assert.deepEqual(parseRedisUrl('redis://127.0.0.1:6380/2'), { kind: 'server', url: 'redis://127.0.0.1:6380/2' });
    assert.deepEqual(parseRedisUrl('rediss://user:pw@redis.example:6380'), { kind: 'server', url: 'rediss://user:pw@redis.example:6380' });
  });

  it('reads a cluster from redis-cluster:// seeds or from several redis:// URLs, with credentials and TLS', () => {
    assert.deepEqual(parseRedisUrl('redis-cluster://10.0.0.1:7000,10.0.0.2:7001,[::1]:7002'), {
      kind: 'cluster',
      seeds: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
        { host: '::1', port: 7002 },
      ],
      username: undefined,
      password: undefined,
      tls: false,
    });
    assert.deepEqual(parseRedisUrl('rediss-cluster://baton:s%40cret@a:7000'), {
      kind: 'cluster',
      seeds: [{ host: 'a', port: 7000 }],
      username: 'baton',
      password: 's@cret',
      tls: true,
    });
    assert.deepEqual(parseRedisUrl('redis://:pw@a:7000, redis://:pw@b:7001'), {
      kind: 'cluster',
      seeds: [
        { host: 'a', port: 7000 },
        { host: 'b', port: 7001 },
      ],
      username: undefined,
      password: 'pw',
      tls: false,
    });
  });

  it('refuses what is none of the forms', () => {
    for (const bad of [
      'localhost:6379',
      'http://a:1',
      'redis://',
      'redis://a:1/x',
      'redis-cluster://',
      'redis-cluster://a',
      'redis-cluster://a:1,,b:2',
      'redis-cluster://a:99999',
      'redis://a:1,rediss://b:2',
      'redis://:one@a:1,redis://:two@b:2',
      'redis://a:1,redis://b:2/3',
    ])
      assert.equal(parseRedisUrl(bad), undefined, bad);
  });

  it('is checked by the configuration: a bad value is one line naming the key, the source and every accepted form', () => {
    const schema = configSchema(REDIS_CONFIG_PROPERTIES);
    assert.equal(loadConfig(schema, { argv: ['--redis-url', 'redis-cluster://a:7000,b:7001'], env: {} })['redis-url'], 'redis-cluster://a:7000,b:7001');
    assert.throws(
      () => loadConfig(schema, { argv: [], env: { BATON_REDIS_URL: 'redis-cluster://a' } }),
      (err: Error) =>
        err instanceof ConfigError &&
        !err.message.includes('\n') &&
        err.message.startsWith("configuration: redis-url 'redis-cluster://a' is not a Redis URL") &&
        err.message.includes(REDIS_URL_EXPECTED) &&
        err.message.endsWith('[from environment variable BATON_REDIS_URL]'),
    );
  });
});
