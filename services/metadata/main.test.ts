import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MetadataServiceClient } from '../../gen/baton/v1/metadata_service';
import { startChild } from '../../lib/child-process';
import { makeClient, unary } from '../../lib/grpc-client';
import { LISTENING_LINE } from '../../lib/main';
import { packageRoot } from '../../lib/package-root';
import { startFakePuppetServer } from '../../test/helpers/puppet-server';

const ROOT = packageRoot();
const MAIN = join(ROOT, 'dist', 'services', 'metadata', 'main.js');
// Plaintext: these tests are about the catalog source; TLS is lib/config.ts's and results' main.test.ts's.
const ENV = { ...process.env, BATON_LOG_LEVEL: 'warn', BATON_INSECURE: 'true' };

/** Runs main.js to completion with `args` and returns its exit code and output. */
function runMain(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, env: ENV, encoding: 'utf8', timeout: 15_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('baton-metadata main', () => {
  it('serves examples/modules once it prints its listening line, and exits 0 on SIGTERM', async () => {
    const started = await startChild(process.execPath, [MAIN, '--environmentpath', 'examples/modules', '--listen', '127.0.0.1:0'], {
      cwd: ROOT,
      env: ENV,
      ready: LISTENING_LINE,
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      started.child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    try {
      const address = LISTENING_LINE.exec(started.readyLine)?.[1];
      assert.ok(address, started.readyLine);
      assert.match(started.readyLine, /^baton-metadata listening on 127\.0\.0\.1:\d+$/);
      const client = makeClient(MetadataServiceClient, address);
      try {
        const { task } = await unary(client, client.getTask, { environment: 'production', task: 'demo::echo' });
        assert.equal(task?.name, 'demo::echo');
        assert.deepEqual(
          task?.parameters.map((p) => p.name),
          ['count', 'message'],
        );
      } finally {
        client.close();
      }
    } finally {
      await started.stop();
    }
    assert.deepEqual(await exited, { code: 0, signal: null });
  });

  it('prints one line and exits 2 for a bad flag value', () => {
    const r = runMain(['--environmentpath', 'examples/modules', '--listen', 'no-port-here']);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      "baton-metadata: configuration: listen 'no-port-here' is not host:port (host:port to listen on; port 0 picks a free one); expected host:port, the host a name, an IPv4 address or an IPv6 address in brackets ([::1]:50051), the port 0-65535 [from flag --listen]\n",
    );
  });

  it('prints one line and exits 2 when the environmentpath is missing or not a directory', () => {
    const missing = runMain(['--environmentpath', 'no/such/dir']);
    assert.equal(missing.code, 2);
    assert.match(
      missing.stderr,
      /^baton-metadata: configuration: environmentpath '.*no\/such\/dir' cannot be used \(ENOENT\); expected a directory holding <environment>\/modules\/<module>\/tasks\/\n$/,
    );
    const file = runMain(['--environmentpath', 'package.json']);
    assert.equal(file.code, 2);
    assert.match(file.stderr, /^baton-metadata: configuration: environmentpath '.*package\.json' is not a directory; .*\n$/);
    const none = runMain([]);
    assert.equal(none.code, 2);
    assert.equal(none.stderr, "baton-metadata: configuration: missing required key 'environmentpath' (or 'puppetserver-url'); expected one source of tasks\n");
  });

  it('prints one line and exits 2 when both sources are set, or a Puppet Server key without its certificate', () => {
    const both = runMain(['--environmentpath', 'examples/modules', '--puppetserver-url', 'https://puppet:8140']);
    assert.equal(both.code, 2);
    assert.equal(both.stderr, 'baton-metadata: configuration: environmentpath and puppetserver-url are both set; expected one source of tasks\n');
    const half = runMain(['--puppetserver-url', 'https://puppet:8140', '--puppetserver-key', 'package.json']);
    assert.equal(half.code, 2);
    assert.equal(half.stderr, 'baton-metadata: configuration: puppetserver-cert and puppetserver-key go together; set both or neither\n');
  });

  it('serves the tasks of a Puppet Server given puppetserver-url', async () => {
    const fake = await startFakePuppetServer({
      environments: {
        production: [
          {
            module: 'remote',
            task: 'hello',
            metadata: { description: 'from Puppet Server' },
            files: [{ module: 'remote', mount: 'tasks', rel: 'hello.sh', content: 'echo hi', implementation: true }],
          },
        ],
      },
    });
    const started = await startChild(process.execPath, [MAIN, '--puppetserver-url', fake.url, '--listen', '127.0.0.1:0'], {
      cwd: ROOT,
      env: ENV,
      ready: LISTENING_LINE,
    });
    const client = makeClient(MetadataServiceClient, LISTENING_LINE.exec(started.readyLine)?.[1] ?? '');
    try {
      const listed = await unary(client, client.listTasks, { environment: '', pageSize: 0, pageToken: '', includePrivate: false });
      assert.deepEqual(
        listed.tasks.map((t) => [t.name, t.description]),
        [['remote::hello', 'from Puppet Server']],
      );
      const { task } = await unary(client, client.getTask, { environment: 'production', task: 'remote::hello' });
      assert.deepEqual(
        task?.files.map((f) => f.path),
        ['remote/tasks/hello.sh'],
      );
    } finally {
      client.close();
      await started.stop();
      await fake.stop();
    }
  });
});
