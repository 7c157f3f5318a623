import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, credentials, status, type ServiceError } from '@grpc/grpc-js';
import {
  GetTaskRequest,
  MetadataServiceClient,
  MetadataServiceService,
  type ReadTaskFileRequest,
  type ReadTaskFileResponse,
} from '../../gen/baton/v1/metadata_service';
import { InputMethod } from '../../gen/baton/v1/task';
import { readServiceError, type ErrorReport } from '../../lib/errors';
import { makeClient, unary } from '../../lib/grpc-client';
import { METADATA_MAX_RECEIVE_MESSAGE_BYTES, startServer, type RunningServer } from '../../lib/grpc-server';
import { createLogger } from '../../lib/logger';
import { packageRoot } from '../../lib/package-root';
import { Catalog } from './catalog';
import { CHUNK_SIZE_BYTES } from './task-file-chunks';
import { createMetadataService } from './metadata-service';

const log = createLogger('metadata-test', 'silent');
const EXAMPLES = join(packageRoot(), 'examples', 'modules');
const DEMO_TASKS = join(EXAMPLES, 'production', 'modules', 'demo', 'tasks');

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Starts a MetadataService over `environmentPath` on 127.0.0.1:0 and a client of it. */
async function serve(environmentPath: string): Promise<{ server: RunningServer; client: MetadataServiceClient }> {
  const server = await startServer({
    listen: '127.0.0.1:0',
    log,
    services: [
      { name: 'baton.v1.MetadataService', definition: MetadataServiceService, implementation: createMetadataService(new Catalog({ environmentPath }), log) },
    ],
    maxReceiveMessageBytes: METADATA_MAX_RECEIVE_MESSAGE_BYTES,
  });
  return { server, client: makeClient(MetadataServiceClient, server.address) };
}

/** Sends an encoded request to `path` and resolves when it is answered (the answer's bytes). */
function rawUnary(address: string, path: string, request: Uint8Array): Promise<Buffer> {
  const raw = (b: Buffer) => b;
  const client = new Client(address, credentials.createInsecure());
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(path, raw, raw, Buffer.from(request), { deadline: Date.now() + 5_000 }, (err: ServiceError | null, res?: Buffer) => {
      client.close();
      if (err) reject(err);
      else resolve(res ?? Buffer.alloc(0));
    });
  });
}

/** Reads a whole task file through ReadTaskFile. */
function readTaskFile(client: MetadataServiceClient, req: Partial<ReadTaskFileRequest>): Promise<{ messages: ReadTaskFileResponse[]; data: Buffer }> {
  return new Promise((resolve, reject) => {
    const messages: ReadTaskFileResponse[] = [];
    const stream = client.readTaskFile({ environment: '', path: '', sha256: '', ...req }, { deadline: Date.now() + 10_000 });
    stream.on('data', (m: ReadTaskFileResponse) => messages.push(m));
    stream.on('error', reject);
    stream.on('end', () => resolve({ messages, data: Buffer.concat(messages.map((m) => m.data)) }));
  });
}

/** Runs `call`, expects it to fail, and returns the decoded error. */
async function failure(call: () => Promise<unknown>): Promise<ErrorReport> {
  try {
    await call();
  } catch (err) {
    return readServiceError(err as ServiceError);
  }
  assert.fail('the call succeeded');
}

describe('MetadataService over examples/modules', () => {
  let server: RunningServer;
  let client: MetadataServiceClient;

  before(async () => ({ server, client } = await serve(EXAMPLES)));
  after(async () => {
    client.close();
    await server.drain();
  });

  const listTasks = (req: { environment?: string; pageSize?: number; pageToken?: string; includePrivate?: boolean }) =>
    unary(client, client.listTasks, { environment: '', pageSize: 0, pageToken: '', includePrivate: false, ...req });
  const getTask = (task: string, environment = '') => unary(client, client.getTask, { environment, task });

  // A task name valid by pattern and 20,000 characters long used to get no answer: its NOT_FOUND
  // repeated it three times in the trailers (message, status details, ErrorInfo), past the 64 KiB
  // an HTTP/2 peer accepts, and every later call of the connection stalled with it.
  // From 1 MiB on, the request is larger than the service accepts at all, refused from its length prefix.
  for (const size of [8_000, 20_000, 64 * 1024, 1024 * 1024, 10 * 1024 * 1024]) {
    it(`answers a ${size}-character task name within 1 s, and the next call on the connection too`, async () => {
      // Encoded before the clock starts: encoding 10 MiB takes the client itself most of a second.
      const request = GetTaskRequest.encode({ task: 'a'.repeat(size), environment: 'production' }).finish();
      const start = performance.now();
      const err = await failure(() => rawUnary(server.address, '/baton.v1.MetadataService/GetTask', request));
      if (size >= METADATA_MAX_RECEIVE_MESSAGE_BYTES) {
        assert.equal(err.code, status.RESOURCE_EXHAUSTED, err.message);
        assert.match(err.message, new RegExp(`^Received message larger than max \\(\\d+ vs ${METADATA_MAX_RECEIVE_MESSAGE_BYTES}\\)$`));
      } else {
        assert.equal(err.code, status.INVALID_ARGUMENT, err.message);
        assert.match(err.message, new RegExp(`^task 'a{40}…' \\(${size} characters\\) is ${size} characters long; at most 256 characters are accepted`));
        assert.deepEqual(
          err.violations.map((v) => v.field),
          ['task'],
        );
      }
      assert.equal((await getTask('demo::echo')).task?.name, 'demo::echo');
      assert.ok(performance.now() - start < 1_000, `answered in ${Math.round(performance.now() - start)} ms`);
    });
  }

  it('lists the environments with their task counts', async () => {
    const res = await unary(client, client.listEnvironments, {});
    assert.deepEqual(res.environments, [{ name: 'production', taskCount: 4 }]);
  });

  it('lists the tasks of production sorted by name, one page at a time', async () => {
    const first = await listTasks({ pageSize: 3 });
    assert.deepEqual(
      first.tasks.map((t) => t.name),
      ['demo', 'demo::echo', 'demo::fail'],
    );
    assert.equal(first.totalSize, 4);
    assert.notEqual(first.nextPageToken, '');
    assert.equal(first.tasks[1].description, "Prints its message back as JSON, with the count and the node's name");
    const second = await listTasks({ pageSize: 3, pageToken: first.nextPageToken });
    assert.deepEqual(
      second.tasks.map((t) => t.name),
      ['demo::uptime'],
    );
    assert.equal(second.nextPageToken, '');

    const names: string[] = [];
    let pageToken = '';
    let pages = 0;
    do {
      const page = await listTasks({ environment: 'production', pageSize: 1, pageToken });
      names.push(...page.tasks.map((t) => t.name));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken);
    assert.equal(pages, 4);
    assert.deepEqual(names, ['demo', 'demo::echo', 'demo::fail', 'demo::uptime']);
  });

  it('refuses a page token used with other filters or not made by ListTasks', async () => {
    const first = await listTasks({ pageSize: 1 });
    const other = await failure(() => listTasks({ pageSize: 1, pageToken: first.nextPageToken, includePrivate: true }));
    assert.equal(other.code, status.INVALID_ARGUMENT);
    assert.match(other.message, /^page_token belongs to a ListTasks request with other environment and include_private;/);
    assert.deepEqual(
      other.violations.map((v) => v.field),
      ['page_token'],
    );
    const garbage = await failure(() => listTasks({ pageToken: 'not-a-token' }));
    assert.equal(garbage.code, status.INVALID_ARGUMENT);
    assert.match(garbage.message, /^page_token is not a next_page_token of ListTasks; leave it empty for the first page$/);
  });

  it('answers NOT_FOUND for an unknown environment, naming the known ones', async () => {
    const err = await failure(() => listTasks({ environment: 'staging' }));
    assert.equal(err.code, status.NOT_FOUND);
    assert.equal(err.reason, 'ENVIRONMENT_NOT_FOUND');
    assert.equal(err.message, "environment 'staging' not found; known environments: production");
    assert.equal((await failure(() => getTask('demo::echo', 'staging'))).code, status.NOT_FOUND);
    assert.equal((await failure(() => getTask('demo::echo', '../etc'))).code, status.INVALID_ARGUMENT);
  });

  it('returns demo::echo with typed parameters and files whose sha256 matches the disk', async () => {
    const { task } = await getTask('demo::echo');
    assert.ok(task);
    assert.equal(task.name, 'demo::echo');
    assert.equal(task.environment, 'production');
    assert.equal(task.inputMethod, InputMethod.INPUT_METHOD_ENVIRONMENT);
    assert.equal(task.parametersDeclared, true);
    assert.deepEqual(
      task.parameters.map((p) => ({ name: p.name, type: p.type, required: p.required, defaultValue: p.defaultValue as unknown })),
      [
        { name: 'count', type: 'Optional[Integer[1,10]]', required: false, defaultValue: 1 },
        { name: 'message', type: 'String[1]', required: true, defaultValue: undefined },
      ],
    );
    const script = readFileSync(join(DEMO_TASKS, 'echo.sh'));
    assert.deepEqual(task.files, [{ path: 'demo/tasks/echo.sh', sha256: sha256(script), sizeBytes: script.length }]);
    assert.deepEqual(JSON.parse(task.metadataJson), JSON.parse(readFileSync(join(DEMO_TASKS, 'echo.json'), 'utf8')));
  });

  it('returns the init task under the module name', async () => {
    const { task } = await getTask('demo');
    assert.equal(task?.inputMethod, InputMethod.INPUT_METHOD_STDIN);
    assert.equal(task?.files[0].path, 'demo/tasks/init.sh');
    const err = await failure(() => getTask('demo::init'));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(err.message, /is named 'demo'/);
  });

  it('answers NOT_FOUND for an unknown task and INVALID_ARGUMENT for a malformed name', async () => {
    const missing = await failure(() => getTask('demo::nope'));
    assert.equal(missing.code, status.NOT_FOUND);
    assert.equal(missing.message, "task 'demo::nope' not found in environment 'production'");
    assert.equal(missing.reason, 'TASK_NOT_FOUND');
    for (const bad of ['Demo::echo', 'demo::echo::x', '', 'demo/echo']) {
      const err = await failure(() => getTask(bad));
      assert.equal(err.code, status.INVALID_ARGUMENT, bad);
      assert.match(err.message, /expected a canonical task name '<module>::<task>'/);
      assert.deepEqual(
        err.violations.map((v) => v.field),
        ['task'],
      );
    }
  });

  it('streams a task file with its size and sha256 in the first message', async () => {
    const script = readFileSync(join(DEMO_TASKS, 'echo.sh'));
    const { messages, data } = await readTaskFile(client, { path: 'demo/tasks/echo.sh', sha256: sha256(script) });
    assert.equal(messages.length, 1);
    assert.equal(messages[0].sizeBytes, script.length);
    assert.equal(messages[0].sha256, sha256(script));
    assert.deepEqual(data, script);
  });

  it('refuses paths with relative components and paths that belong to no task', async () => {
    const dotdot = await failure(() => readTaskFile(client, { path: 'demo/tasks/../tasks/echo.sh' }));
    assert.equal(dotdot.code, status.INVALID_ARGUMENT);
    assert.match(dotdot.message, /relative component/);
    for (const path of ['demo/tasks/echo.json', 'demo/files/secret.txt']) {
      const err = await failure(() => readTaskFile(client, { path }));
      assert.equal(err.code, status.NOT_FOUND, path);
      assert.equal(err.message, `'${path}' is not a file of any task in environment 'production'`);
    }
  });
});

describe('MetadataService over a fixture environmentpath', () => {
  let root: string;
  let server: RunningServer;
  let client: MetadataServiceClient;
  const blob = randomBytes(3 * CHUNK_SIZE_BYTES + 1234);

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'baton-metadata-'));
    const files: Record<string, string | Buffer> = {
      'production/modules/big/tasks/payload.sh': '#!/bin/sh\n',
      'production/modules/big/tasks/payload.json': JSON.stringify({ files: ['big/files/blob.bin', 'big/files/empty.txt'] }),
      'production/modules/big/files/blob.bin': blob,
      'production/modules/big/files/empty.txt': '',
      'production/modules/big/files/secret.txt': 'not listed by any task',
      'production/modules/big/tasks/hidden.sh': 'x',
      'production/modules/big/tasks/hidden.json': JSON.stringify({ private: true }),
      'production/modules/big/tasks/broken.json': '{',
      'production/modules/big/tasks/broken.sh': 'x',
      'staging/modules/other/tasks/one.sh': 'x',
    };
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), content);
    }
    ({ server, client } = await serve(root));
  });
  after(async () => {
    client.close();
    await server.drain();
    rmSync(root, { recursive: true, force: true });
  });

  it('reassembles a file larger than 64 KiB from chunks with increasing offsets', async () => {
    const { messages, data } = await readTaskFile(client, { path: 'big/files/blob.bin' });
    assert.equal(messages.length, 4);
    assert.deepEqual(
      messages.map((m) => m.offset),
      [0, CHUNK_SIZE_BYTES, 2 * CHUNK_SIZE_BYTES, 3 * CHUNK_SIZE_BYTES],
    );
    assert.ok(messages.every((m) => m.data.length <= CHUNK_SIZE_BYTES));
    assert.equal(messages[0].sizeBytes, blob.length);
    assert.equal(messages[0].sha256, sha256(blob));
    assert.equal(sha256(data), sha256(blob));
  });

  it('sends one message for an empty file', async () => {
    const { messages } = await readTaskFile(client, { path: 'big/files/empty.txt' });
    assert.equal(messages.length, 1);
    assert.equal(messages[0].data.length, 0);
    assert.equal(messages[0].sha256, sha256(''));
  });

  it('answers FAILED_PRECONDITION when the file no longer has the sha256 the caller expects', async () => {
    const err = await failure(() => readTaskFile(client, { path: 'big/files/blob.bin', sha256: sha256('something else') }));
    assert.equal(err.code, status.FAILED_PRECONDITION);
    assert.match(err.message, /has changed/);
    assert.equal((await failure(() => readTaskFile(client, { path: 'big/files/blob.bin', sha256: 'XYZ' }))).code, status.INVALID_ARGUMENT);
  });

  it('never serves a file of the environmentpath that no task lists', async () => {
    assert.equal((await failure(() => readTaskFile(client, { path: 'big/files/secret.txt' }))).code, status.NOT_FOUND);
    assert.equal((await failure(() => readTaskFile(client, { path: 'big/tasks/broken.sh' }))).code, status.NOT_FOUND);
    assert.equal((await failure(() => readTaskFile(client, { path: 'other/tasks/one.sh' }))).code, status.NOT_FOUND, 'files of another environment');
    assert.equal((await readTaskFile(client, { environment: 'staging', path: 'other/tasks/one.sh' })).data.toString(), 'x');
  });

  it('serves each environment from its own modulepath, production by default, and names what it cannot find', async () => {
    const list = (environment: string) => unary(client, client.listTasks, { environment, pageSize: 0, pageToken: '', includePrivate: true });
    assert.deepEqual(
      (await list('staging')).tasks.map((t) => t.name),
      ['other::one'],
    );
    assert.deepEqual(
      (await list('')).tasks.map((t) => t.name),
      (await list('production')).tasks.map((t) => t.name),
    );
    assert.equal((await unary(client, client.getTask, { environment: 'staging', task: 'other::one' })).task?.environment, 'staging');
    const elsewhere = await failure(() => unary(client, client.getTask, { environment: '', task: 'other::one' }));
    assert.equal(elsewhere.code, status.NOT_FOUND);
    assert.equal(elsewhere.message, "task 'other::one' not found in environment 'production'");
    for (const call of [
      () => list('nosuch'),
      () => unary(client, client.getTask, { environment: 'nosuch', task: 'big::payload' }),
      () => readTaskFile(client, { environment: 'nosuch', path: 'big/tasks/payload.sh' }),
    ]) {
      const err = await failure(call);
      assert.equal(err.code, status.NOT_FOUND);
      assert.equal(err.message, "environment 'nosuch' not found; known environments: production, staging");
    }
    const { environments } = await unary(client, client.listEnvironments, {});
    assert.deepEqual(environments, [
      { name: 'production', taskCount: 3 },
      { name: 'staging', taskCount: 1 },
    ]);
  });

  it('hides private tasks unless asked, and lists broken tasks with their error', async () => {
    const req = { environment: 'production', pageSize: 0, pageToken: '', includePrivate: false };
    const visible = await unary(client, client.listTasks, req);
    assert.deepEqual(
      visible.tasks.map((t) => t.name),
      ['big::broken', 'big::payload'],
    );
    assert.equal(visible.totalSize, 2);
    assert.equal(visible.tasks[0].error?.kind, 'puppet.tasks/unparseable-metadata');
    assert.equal(visible.tasks[1].error, undefined);
    const all = await unary(client, client.listTasks, { ...req, includePrivate: true });
    assert.deepEqual(
      all.tasks.map((t) => [t.name, t.private]),
      [
        ['big::broken', false],
        ['big::hidden', true],
        ['big::payload', false],
      ],
    );
    const hidden = await unary(client, client.getTask, { environment: '', task: 'big::hidden' });
    assert.equal(hidden.task?.private, true, 'private tasks can still be fetched (and run)');
  });

  it('answers FAILED_PRECONDITION naming the error kind for a task that fails to load', async () => {
    const err = await failure(() => unary(client, client.getTask, { environment: '', task: 'big::broken' }));
    assert.equal(err.code, status.FAILED_PRECONDITION);
    assert.equal(err.reason, 'TASK_LOAD_FAILED');
    assert.match(err.message, /^task 'big::broken' in environment 'production' fails to load: puppet\.tasks\/unparseable-metadata: /);
  });
});
