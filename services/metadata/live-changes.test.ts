import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status, type ServiceError } from '@grpc/grpc-js';
import { MetadataServiceClient, MetadataServiceService, type ReadTaskFileResponse } from '../../gen/baton/v1/metadata_service';
import { readServiceError } from '../../lib/errors';
import { makeClient, unary } from '../../lib/grpc-client';
import { startServer, type RunningServer } from '../../lib/grpc-server';
import { createLogger } from '../../lib/logger';
import { waitFor } from '../../test/helpers/wait';
import { Catalog } from './catalog';
import { createMetadataService } from './metadata-service';

/**
 * Edits to the modulepath reach callers of a running service without a
 * restart, and a file rewritten while it is streamed is never sent under its old sha256.
 */

const log = createLogger('metadata-test', 'silent');

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

describe('MetadataService picks up live changes', () => {
  let root: string;
  let server: RunningServer;
  let client: MetadataServiceClient;
  const write = (path: string, content: string | Buffer) => {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  };
  const names = async () =>
    (await unary(client, client.listTasks, { environment: 'production', pageSize: 0, pageToken: '', includePrivate: true })).tasks.map((t) => t.name);

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'baton-live-'));
    write('production/modules/acme/tasks/first.sh', '#!/bin/sh\necho one\n');
    write('production/modules/doomed/tasks/init.sh', '#!/bin/sh\n');
    // A short interval keeps the test quick; the behaviour is the default's, one interval later.
    const catalog = new Catalog({ environmentPath: root, rescanIntervalMs: 100 });
    server = await startServer({
      listen: '127.0.0.1:0',
      log,
      services: [{ name: 'baton.v1.MetadataService', definition: MetadataServiceService, implementation: createMetadataService(catalog, log) }],
    });
    client = makeClient(MetadataServiceClient, server.address);
    assert.deepEqual(await names(), ['acme::first', 'doomed']);
  });
  after(async () => {
    client.close();
    await server.drain();
    rmSync(root, { recursive: true, force: true });
  });

  it('lists and serves a task added after it started', async () => {
    write('production/modules/acme/tasks/second.json', JSON.stringify({ description: 'added later' }));
    write('production/modules/acme/tasks/second.sh', '#!/bin/sh\necho two\n');
    await waitFor('acme::second to be listed', async () => (await names()).includes('acme::second'));
    const { task } = await unary(client, client.getTask, { environment: '', task: 'acme::second' });
    assert.equal(task?.description, 'added later');
  });

  it('announces the new sha256 of a script edited in place', async () => {
    const before = (await unary(client, client.getTask, { environment: '', task: 'acme::first' })).task?.files[0];
    assert.equal(before?.sha256, sha256('#!/bin/sh\necho one\n'));
    const edited = '#!/bin/sh\necho edited, and longer\n';
    write('production/modules/acme/tasks/first.sh', edited);
    await waitFor(
      'the new sha256 of acme::first',
      async () => (await unary(client, client.getTask, { environment: '', task: 'acme::first' })).task?.files[0].sha256 === sha256(edited),
    );
    const err = await readFile(client, 'acme/tasks/first.sh', before?.sha256 ?? '').then(
      () => undefined,
      (e: ServiceError) => readServiceError(e),
    );
    assert.equal(err?.code, status.FAILED_PRECONDITION, 'the old sha256 is refused');
    assert.equal(sha256((await readFile(client, 'acme/tasks/first.sh', sha256(edited))).data), sha256(edited));
  });

  it('forgets a removed module', async () => {
    rmSync(join(root, 'production/modules/doomed'), { recursive: true });
    await waitFor('module doomed to disappear', async () => !(await names()).includes('doomed'));
    const err = await unary(client, client.getTask, { environment: '', task: 'doomed' }).then(
      () => undefined,
      (e: ServiceError) => readServiceError(e),
    );
    assert.equal(err?.code, status.NOT_FOUND);
    const gone = await readFile(client, 'doomed/tasks/init.sh', '').then(
      () => undefined,
      (e: ServiceError) => readServiceError(e),
    );
    assert.equal(gone?.code, status.NOT_FOUND);
  });

  it('never sends a file rewritten mid-stream under its old sha256', async () => {
    const original = randomBytes(4 * 1024 * 1024);
    write('production/modules/acme/tasks/large.sh', original);
    await waitFor('acme::large to be listed', async () => (await names()).includes('acme::large'));

    const messages: ReadTaskFileResponse[] = [];
    const outcome = await new Promise<{ error?: ServiceError }>((resolve) => {
      const stream = client.readTaskFile({ environment: '', path: 'acme/tasks/large.sh', sha256: '' }, { deadline: Date.now() + 20_000 });
      let rewritten = false;
      stream.on('data', (m: ReadTaskFileResponse) => {
        messages.push(m);
        if (rewritten) return;
        rewritten = true;
        // Hold the stream while the file is rewritten in place (same inode, new bytes), so the
        // service must read the rest of it after the change.
        stream.pause();
        writeFileSync(join(root, 'production/modules/acme/tasks/large.sh'), randomBytes(original.length));
        stream.resume();
      });
      stream.on('error', (error: ServiceError) => resolve({ error }));
      stream.on('end', () => resolve({}));
    });
    assert.ok(messages.length > 0);
    const announced = messages[0].sha256;
    if (outcome.error) {
      const err = readServiceError(outcome.error);
      assert.equal(err.code, status.FAILED_PRECONDITION, err.message);
      assert.match(err.message, /changed while it was being sent/);
    } else {
      assert.equal(sha256(Buffer.concat(messages.map((m) => m.data))), announced, 'a clean end means the bytes match the announced sha256');
    }
  });
});

/** Reads one whole task file. */
function readFile(client: MetadataServiceClient, path: string, expected: string): Promise<{ data: Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const stream = client.readTaskFile({ environment: '', path, sha256: expected }, { deadline: Date.now() + 10_000 });
    stream.on('data', (m: ReadTaskFileResponse) => chunks.push(m.data));
    stream.on('error', reject);
    stream.on('end', () => resolve({ data: Buffer.concat(chunks) }));
  });
}
