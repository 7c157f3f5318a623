import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startChild } from '../lib/child-process';
import { LISTENING_LINE } from '../lib/main';
import { packageRoot } from '../lib/package-root';
import { useRedisServer } from './helpers/redis';

const root = packageRoot();

/** Starts a service with a deploy/ config file (only the address is overridden) and stops it. */
async function startsWith(piece: string, extra: string[] = []): Promise<void> {
  const child = await startChild(
    process.execPath,
    [join(root, 'dist', 'services', piece, 'main.js'), '--config', join(root, 'deploy', 'config', `${piece}.yaml`), '--listen', '127.0.0.1:0', '--log-level', 'silent', ...extra],
    { ready: LISTENING_LINE },
  );
  assert.match(child.readyLine, LISTENING_LINE);
  await child.stop();
  assert.equal(child.child.exitCode, 0);
}

describe('deploy/config', () => {
  // Never the 6379 of the file: a private redis-server for the test.
  const redis = useRedisServer();

  it('metadata.yaml is a configuration the metadata service accepts', async () => {
    await startsWith('metadata', ['--environmentpath', join(root, 'examples', 'modules')]);
  });

  it('results.yaml is a configuration the results service accepts', async () => {
    await startsWith('results', ['--redis-url', redis.url]);
  });

  it('scheduler.yaml is a configuration the scheduler accepts', async () => {
    await startsWith('scheduler', ['--redis-url', redis.url]);
  });
});
