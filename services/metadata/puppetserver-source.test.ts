import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, before, beforeEach, describe, it } from 'node:test';
import { status, type ServiceError } from '@grpc/grpc-js';
import { MetadataServiceClient, MetadataServiceService, type ReadTaskFileResponse } from '../../gen/baton/v1/metadata_service';
import { InputMethod } from '../../gen/baton/v1/task';
import { readServiceError, type ErrorReport } from '../../lib/errors';
import { makeClient, unary } from '../../lib/grpc-client';
import { startServer, type RunningServer } from '../../lib/grpc-server';
import { createLogger } from '../../lib/logger';
import { makeTestCertificates, type TestCertificates } from '../../test/helpers/certificates';
import { startFakePuppetServer, type FakePuppetServer, type FakeTask } from '../../test/helpers/puppet-server';
import { createMetadataService } from './metadata-service';
import { PuppetServerClient } from './puppetserver-client';
import { PuppetServerSource } from './puppetserver-source';
import { CHUNK_SIZE_BYTES } from './task-file-chunks';

const log = createLogger('metadata-test', 'silent');

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

const big = randomBytes(2 * CHUNK_SIZE_BYTES + 10);

/** The environments of the fake Puppet Server, fresh for each test. */
function environments(): Record<string, FakeTask[]> {
  return {
    production: [
      {
        module: 'acme',
        task: 'init',
        metadata: {
          description: 'The acme task',
          supports_noop: true,
          input_method: 'stdin',
          parameters: { name: { type: 'String[1]' }, count: { type: 'Optional[Integer]', default: 1 } },
        },
        files: [{ module: 'acme', mount: 'tasks', rel: 'init.sh', content: '#!/bin/sh\necho init\n', implementation: true }],
      },
      {
        module: 'acme',
        task: 'multi',
        metadata: {
          description: 'Cross-platform',
          implementations: [
            { name: 'multi.sh', requirements: ['shell'], input_method: 'environment', files: ['helper/lib/ruby/'] },
            { name: 'multi.ps1', requirements: ['powershell'] },
          ],
          files: ['helper/files/util.sh'],
          extensions: { vendor: { kept: true } },
        },
        files: [
          { module: 'acme', mount: 'tasks', rel: 'multi.sh', content: 'sh', implementation: true },
          { module: 'acme', mount: 'tasks', rel: 'multi.ps1', content: 'ps1', implementation: true },
          { module: 'helper', mount: 'files', rel: 'util.sh', content: 'util\n', implementation: false },
          { module: 'helper', mount: 'lib', rel: 'ruby/a.rb', content: 'a\n', implementation: false },
          { module: 'helper', mount: 'scripts', rel: 'big.bin', content: big, implementation: false },
        ],
      },
      {
        module: 'acme',
        task: 'hidden',
        metadata: { private: true, description: 'helper only' },
        files: [{ module: 'acme', mount: 'tasks', rel: 'hidden.sh', content: 'x', implementation: true }],
      },
      {
        module: 'acme',
        task: 'broken',
        metadata: {},
        files: [],
        error: { kind: 'puppet.tasks/unparseable-metadata', msg: 'unexpected token at {', details: {} },
      },
    ],
    staging: [
      { module: 'other', task: 'one', metadata: {}, files: [{ module: 'other', mount: 'tasks', rel: 'one.sh', content: 'one', implementation: true }] },
      { module: 'other', task: 'badtype', metadata: { parameters: { lang: { type: 'Enum[LG,no]' } } }, files: [] },
    ],
  };
}

describe('MetadataService answered from Puppet Server', () => {
  let fake: FakePuppetServer;
  let server: RunningServer;
  let client: MetadataServiceClient;
  let http: PuppetServerClient;

  const start = async (cacheTtlMs: number) => {
    http = new PuppetServerClient({ url: fake.url });
    const source = new PuppetServerSource(http, { cacheTtlMs });
    server = await startServer({
      listen: '127.0.0.1:0',
      log,
      services: [{ name: 'baton.v1.MetadataService', definition: MetadataServiceService, implementation: createMetadataService(source, log) }],
    });
    client = makeClient(MetadataServiceClient, server.address);
  };
  const stop = async () => {
    client.close();
    await server.drain();
    http.close();
  };
  const list = (environment = '', includePrivate = false) => unary(client, client.listTasks, { environment, pageSize: 0, pageToken: '', includePrivate });
  const getTask = (task: string, environment = '') => unary(client, client.getTask, { environment, task });
  const read = (path: string, expected = '', environment = '') =>
    new Promise<{ messages: ReadTaskFileResponse[]; data: Buffer }>((resolve, reject) => {
      const messages: ReadTaskFileResponse[] = [];
      const stream = client.readTaskFile({ environment, path, sha256: expected }, { deadline: Date.now() + 10_000 });
      stream.on('data', (m: ReadTaskFileResponse) => messages.push(m));
      stream.on('error', reject);
      stream.on('end', () => resolve({ messages, data: Buffer.concat(messages.map((m) => m.data)) }));
    });
  const failure = async (call: () => Promise<unknown>): Promise<ErrorReport> => {
    try {
      await call();
    } catch (err) {
      return readServiceError(err as ServiceError);
    }
    assert.fail('the call succeeded');
  };

  describe('with the cache', () => {
    before(async () => {
      fake = await startFakePuppetServer({ environments: environments() });
      await start(60_000);
    });
    after(async () => {
      await stop();
      await fake.stop();
    });
    beforeEach(() => fake.requests.splice(0));

    it('lists tasks with descriptions in one request, private ones hidden unless asked, broken ones absent', async () => {
      const visible = await list();
      assert.deepEqual(
        visible.tasks.map((t) => [t.name, t.description]),
        [
          ['acme', 'The acme task'],
          ['acme::multi', 'Cross-platform'],
        ],
      );
      assert.deepEqual(fake.requests, ['/puppet/v3/tasks?environment=production']);
      const all = await list('production', true);
      assert.deepEqual(
        all.tasks.map((t) => [t.name, t.private]),
        [
          ['acme', false],
          ['acme::hidden', true],
          ['acme::multi', false],
        ],
      );
      assert.equal(fake.requests.length, 1, 'the listing is cached');
    });

    it('returns a task from its detail, init under the module name, files under Baton paths', async () => {
      const { task } = await getTask('acme');
      assert.deepEqual(fake.requests, ['/puppet/v3/tasks/acme/init?environment=production']);
      assert.equal(task?.description, 'The acme task');
      assert.equal(task?.supportsNoop, true);
      assert.equal(task?.inputMethod, InputMethod.INPUT_METHOD_STDIN);
      assert.deepEqual(task?.files, [{ path: 'acme/tasks/init.sh', sha256: sha256('#!/bin/sh\necho init\n'), sizeBytes: 20 }]);
      assert.deepEqual(
        task?.parameters.map((p): unknown[] => [p.name, p.type, p.required, p.defaultValue as unknown]),
        [
          ['count', 'Optional[Integer]', false, 1],
          ['name', 'String[1]', true, undefined],
        ],
      );

      const multi = (await getTask('acme::multi')).task;
      assert.deepEqual(
        multi?.files.map((f) => f.path),
        ['acme/tasks/multi.sh', 'acme/tasks/multi.ps1', 'helper/files/util.sh', 'helper/lib/ruby/a.rb', 'helper/scripts/big.bin'],
      );
      assert.deepEqual(multi?.implementations, [
        { path: 'acme/tasks/multi.sh', requirements: ['shell'], inputMethod: InputMethod.INPUT_METHOD_ENVIRONMENT, files: ['helper/lib/ruby/a.rb'] },
        { path: 'acme/tasks/multi.ps1', requirements: ['powershell'], inputMethod: InputMethod.INPUT_METHOD_UNSPECIFIED, files: [] },
      ]);
      assert.deepEqual(
        (JSON.parse(multi?.metadataJson ?? '{}') as { extensions?: unknown }).extensions,
        { vendor: { kept: true } },
        'metadata passes through verbatim',
      );
      assert.equal((await getTask('acme::hidden')).task?.private, true, 'private tasks can be fetched (and run)');
    });

    it('streams files from their uri.path on every mount, announcing the sha256 of the bytes sent', async () => {
      await getTask('acme::multi');
      fake.requests.splice(0);
      const bigRead = await read('helper/scripts/big.bin');
      assert.deepEqual(fake.requests, ['/puppet/v3/file_content/scripts/helper/big.bin?environment=production']);
      assert.equal(bigRead.messages.length, 3);
      assert.equal(bigRead.messages[0].sha256, sha256(big));
      assert.equal(bigRead.messages[0].sizeBytes, big.length);
      assert.ok(bigRead.data.equals(big));
      assert.equal((await read('helper/lib/ruby/a.rb')).data.toString(), 'a\n');
      assert.equal(fake.requests[1], '/puppet/v3/file_content/plugins/ruby/a.rb?environment=production', 'lib has no module segment');
      assert.equal((await read('helper/files/util.sh', sha256('util\n'))).data.toString(), 'util\n');
      assert.equal(fake.requests[2], '/puppet/v3/file_content/modules/helper/util.sh?environment=production');
    });

    it('never sends changed content under the sha256 the caller expects', async () => {
      const task = (await getTask('acme::multi')).task;
      const old = task?.files.find((f) => f.path === 'acme/tasks/multi.sh')?.sha256 ?? '';
      const multi = fake.options.environments.production.find((t) => t.task === 'multi');
      assert.ok(multi);
      multi.files[0].content = 'sh, deployed again';
      try {
        const err = await failure(() => read('acme/tasks/multi.sh', old));
        assert.equal(err.code, status.FAILED_PRECONDITION);
        assert.equal(err.reason, 'TASK_FILE_CHANGED');
        const fresh = await read('acme/tasks/multi.sh');
        assert.equal(fresh.messages[0].sha256, sha256('sh, deployed again'), 'the sha256 announced is that of the bytes sent');
      } finally {
        multi.files[0].content = 'sh';
      }
    });

    it('maps Puppet Server 404s to NOT_FOUND naming the environment, module or task', async () => {
      const env = await failure(() => list('nosuch'));
      assert.equal(env.code, status.NOT_FOUND);
      assert.equal(env.reason, 'ENVIRONMENT_NOT_FOUND');
      assert.match(env.message, /^environment 'nosuch' not found on Puppet Server http:\/\/127\.0\.0\.1:\d+ \(Could not find environment 'nosuch'\)$/);
      assert.equal((await failure(() => getTask('acme', 'nosuch'))).reason, 'ENVIRONMENT_NOT_FOUND');
      const task = await failure(() => getTask('acme::nope'));
      assert.equal(task.code, status.NOT_FOUND);
      assert.match(task.message, /^task 'acme::nope' not found in environment 'production' on Puppet Server .* \(Could not find task 'nope'\)$/);
      assert.match((await failure(() => getTask('nomodule::x'))).message, /Could not find module 'nomodule'/);
      assert.match((await failure(() => getTask('acme', 'staging'))).message, /Could not find module 'acme'/, 'environments are separate');
      assert.equal((await getTask('other::one', 'staging')).task?.environment, 'staging');
    });

    it('fails a task whose parameter type does not parse, as a local modulepath does', async () => {
      const err = await failure(() => getTask('other::badtype', 'staging'));
      assert.equal(err.code, status.FAILED_PRECONDITION);
      assert.match(
        err.message,
        /fails to load: puppet\.tasks\/invalid-metadata: task other::badtype: parameter 'lang' has an invalid type: invalid type 'Enum\[LG,no\]'/,
      );
    });

    it('maps a 500 error body to FAILED_PRECONDITION with the task-spec kind', async () => {
      const err = await failure(() => getTask('acme::broken'));
      assert.equal(err.code, status.FAILED_PRECONDITION);
      assert.equal(err.reason, 'TASK_LOAD_FAILED');
      assert.equal(err.message, "task 'acme::broken' in environment 'production' fails to load: puppet.tasks/unparseable-metadata: unexpected token at {");
    });

    it('fetches only files some task lists, learning them after a restart', async () => {
      const fresh = new PuppetServerSource(http, { cacheTtlMs: 60_000 });
      const chunks: Buffer[] = [];
      for await (const m of fresh.readTaskFile('production', 'acme/tasks/hidden.sh', '')) chunks.push(m.data);
      assert.equal(Buffer.concat(chunks).toString(), 'x');
      fake.requests.splice(0);
      const err = await failure(() => read('acme/tasks/secret.sh'));
      assert.equal(err.code, status.NOT_FOUND);
      assert.match(err.message, /^'acme\/tasks\/secret\.sh' is not a file of any task in environment 'production' on Puppet Server /);
      assert.ok(!fake.requests.some((r) => r.includes('file_content')), 'nothing unlisted is requested');
    });

    it('lists the environments with their task counts', async () => {
      const { environments: envs } = await unary(client, client.listEnvironments, {});
      assert.deepEqual(envs, [
        { name: 'production', taskCount: 3 },
        { name: 'staging', taskCount: 2 },
      ]);
    });
  });

  describe('an older Puppet Server without descriptions in its listing', () => {
    before(async () => {
      fake = await startFakePuppetServer({ environments: environments(), listDescriptions: false });
      await start(60_000);
    });
    after(async () => {
      await stop();
      await fake.stop();
    });

    it('fills descriptions from one detail per task, cached by environment and name', async () => {
      const all = await list('', true);
      assert.deepEqual(
        all.tasks.map((t) => [t.name, t.description, t.private]),
        [
          ['acme', 'The acme task', false],
          ['acme::hidden', 'helper only', true],
          ['acme::multi', 'Cross-platform', false],
        ],
      );
      assert.deepEqual([...fake.requests].sort(), [
        '/puppet/v3/tasks/acme/hidden?environment=production',
        '/puppet/v3/tasks/acme/init?environment=production',
        '/puppet/v3/tasks/acme/multi?environment=production',
        '/puppet/v3/tasks?environment=production',
      ]);
      fake.requests.splice(0);
      await getTask('acme::multi');
      assert.deepEqual(fake.requests, [], 'the detail fetched for the listing is reused');
    });
  });

  describe('over HTTPS with a client certificate', () => {
    let certs: TestCertificates;
    before(async () => {
      certs = makeTestCertificates();
      fake = await startFakePuppetServer({ environments: environments(), tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca } });
    });
    after(async () => {
      await fake.stop();
      rmSync(certs.dir, { recursive: true, force: true });
    });

    it('verifies the server against puppetserver-ca and presents the client certificate', async () => {
      const trusted = new PuppetServerClient({ url: fake.url, caFile: certs.ca, certFile: certs.clientCert, keyFile: certs.clientKey });
      const untrusted = new PuppetServerClient({ url: fake.url, certFile: certs.clientCert, keyFile: certs.clientKey });
      const anonymous = new PuppetServerClient({ url: fake.url, caFile: certs.ca });
      try {
        const listed = await new PuppetServerSource(trusted).listTasks('production');
        assert.deepEqual(
          listed.map((t) => t.name),
          ['acme', 'acme::hidden', 'acme::multi'],
        );
        await assert.rejects(
          new PuppetServerSource(untrusted).listTasks('production'),
          /cannot be reached: (SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|DEPTH_ZERO_SELF_SIGNED_CERT)/,
        );
        await assert.rejects(new PuppetServerSource(anonymous).listTasks('production'), /cannot be reached/);
      } finally {
        for (const c of [trusted, untrusted, anonymous]) c.close();
      }
    });
  });

  describe('without a cache', () => {
    before(async () => {
      fake = await startFakePuppetServer({ environments: environments() });
      await start(0);
    });
    after(async () => {
      await stop();
      await fake.stop();
    });

    it('sees a task deployed to Puppet Server on the next call', async () => {
      assert.ok(!(await list()).tasks.some((t) => t.name === 'acme::late'));
      fake.options.environments.production.push({ module: 'acme', task: 'late', metadata: { description: 'deployed later' }, files: [] });
      assert.ok((await list()).tasks.some((t) => t.name === 'acme::late'));
    });

    it('answers UNAVAILABLE when Puppet Server cannot be reached', async () => {
      await fake.stop();
      const err = await failure(() => list());
      assert.equal(err.code, status.UNAVAILABLE);
      assert.match(err.message, /^Puppet Server http:\/\/127\.0\.0\.1:\d+ cannot be reached: ECONNREFUSED$/);
    });
  });
});
