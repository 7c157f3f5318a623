import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, ServerCredentials, status, type ServerWritableStream } from '@grpc/grpc-js';
import { MetadataServiceClient, MetadataServiceService, type ReadTaskFileRequest, type ReadTaskFileResponse } from '../gen/baton/v1/metadata_service';
import type { TaskFile } from '../gen/baton/v1/task';
import { makeClient } from '../lib/grpc-client';
import { DownloadError, FileCache } from './file-cache';

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function taskFile(path: string, content: Buffer): TaskFile {
  return { path, sha256: sha256(content), sizeBytes: content.length };
}

/**
 * A test fixture of the MetadataService API serving only ReadTaskFile from memory, in 4-byte
 * chunks. With `corrupt` set it announces the right size and sha256 but sends other bytes.
 */
class FileServer {
  readonly files = new Map<string, Buffer>();
  corrupt = false;
  calls = 0;
  private server = new Server();
  address = '';

  async start(): Promise<void> {
    this.server.addService(MetadataServiceService, {
      readTaskFile: (call: ServerWritableStream<ReadTaskFileRequest, ReadTaskFileResponse>) => {
        this.calls++;
        const content = this.files.get(call.request.path);
        if (!content) {
          call.emit('error', { code: status.NOT_FOUND, details: `no task file ${call.request.path} in ${call.request.environment}` });
          return;
        }
        const sent = this.corrupt ? Buffer.from(content.map((b) => b ^ 0xff)) : content;
        for (let offset = 0; offset < sent.length || offset === 0; offset += 4) {
          const first = offset === 0;
          call.write({ data: sent.subarray(offset, offset + 4), offset, sizeBytes: first ? content.length : 0, sha256: first ? sha256(content) : '' });
          if (sent.length === 0) break;
        }
        call.end();
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.address = `127.0.0.1:${port}`;
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

describe('FileCache', () => {
  const server = new FileServer();
  let client: MetadataServiceClient;
  let dir: string;
  let cache: FileCache;
  const script = Buffer.from('#!/bin/sh\necho "hello from the task"\n');
  const file = taskFile('acme/tasks/hello.sh', script);

  before(async () => {
    await server.start();
    server.files.set(file.path, script);
    client = makeClient(MetadataServiceClient, server.address);
  });
  after(() => {
    client.close();
    server.stop();
  });
  beforeEach(() => {
    server.corrupt = false;
    server.calls = 0;
    dir = mkdtempSync(join(tmpdir(), 'baton-cache-'));
    cache = new FileCache(dir);
  });

  it('downloads a file in chunks, verifies it, and stores it as <cache>/<sha256> with mode 0640', async () => {
    assert.equal(await cache.has(file), false);
    assert.equal(await cache.ensure([file], 'production', client), 1);
    assert.deepEqual(readdirSync(dir), [file.sha256]);
    assert.deepEqual(readFileSync(join(dir, file.sha256)), script);
    assert.equal(statSync(join(dir, file.sha256)).mode & 0o777, 0o640);
    assert.equal(await cache.has(file), true);
    assert.equal(await cache.ensure([file], 'production', client), 0, 'a cached file is not fetched again');
    assert.equal(server.calls, 1);
  });

  it('rejects content that does not match its sha256, naming the file, expected and actual hash, and keeps nothing', async () => {
    server.corrupt = true;
    const actual = sha256(Buffer.from(script.map((b) => b ^ 0xff)));
    await assert.rejects(cache.download(file, 'production', client), (err: Error) => {
      assert.ok(err instanceof DownloadError);
      assert.match(err.message, /acme\/tasks\/hello\.sh/);
      assert.ok(err.message.includes(`expected sha256 ${file.sha256}`), err.message);
      assert.ok(err.message.includes(actual), err.message);
      return true;
    });
    assert.deepEqual(readdirSync(dir), [], 'no temp file and no cache entry left behind');
    assert.equal(await cache.has(file), false);
  });

  it('notices a cache file that changed after download', async () => {
    await cache.download(file, 'production', client);
    const tampered = Buffer.from(script);
    tampered[tampered.length - 2] = 0x21; // same size, different content
    writeFileSync(join(dir, file.sha256), tampered);
    assert.equal(await cache.has(file), false);
    const problem = await cache.verify(file);
    assert.ok(problem?.includes(`has sha256 ${sha256(tampered)}`), problem);
    assert.ok(problem?.includes(`expected sha256 ${file.sha256}`), problem);
    assert.equal(await cache.ensure([file], 'production', client), 1, 'a damaged file is downloaded again');
    assert.equal(await cache.has(file), true);
  });

  it('lets concurrent downloads of one file (one cache or two sharing a directory) all succeed with one intact copy', async () => {
    const other = new FileCache(dir);
    await Promise.all([cache.download(file, 'production', client), cache.download(file, 'production', client), other.download(file, 'production', client)]);
    assert.equal(server.calls, 2, 'requests within one cache share a download');
    assert.deepEqual(readdirSync(dir), [file.sha256]);
    assert.equal(await cache.has(file), true);
  });

  it('refuses an unsafe path or a malformed sha256 before contacting the metadata service', async () => {
    await assert.rejects(
      cache.download({ ...file, path: 'acme/tasks/../../../etc/passwd' }, 'production', client),
      /task file acme\/tasks\/\.\.\/\.\.\/\.\.\/etc\/passwd: the path contains a relative component/,
    );
    await assert.rejects(cache.download({ ...file, sha256: '../../x' }, 'production', client), /sha256 '\.\.\/\.\.\/x' is not 64 lowercase hex/);
    assert.equal(server.calls, 0);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('reports a metadata service error naming the file', async () => {
    const missing = taskFile('acme/tasks/missing.sh', Buffer.from('x'));
    await assert.rejects(
      cache.download(missing, 'staging', client),
      /task file acme\/tasks\/missing\.sh: download from environment staging failed: no task file acme\/tasks\/missing\.sh in staging/,
    );
    assert.deepEqual(readdirSync(dir), []);
  });

  it('stops a download that grows past the expected size', async () => {
    await assert.rejects(cache.download({ ...file, sizeBytes: 5 }, 'production', client), /sent more than the expected 5 bytes/);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('sweeps cache files unused for the retention age, except those in use; a run touches its files', async () => {
    await cache.ensure([file], 'production', client);
    const other = join(dir, 'a'.repeat(64));
    writeFileSync(other, 'x');
    const hourMs = 3600_000;
    const later = Date.now() + 2 * hourMs;
    assert.deepEqual(await cache.sweep(hourMs, new Set([file.sha256]), later), ['a'.repeat(64)]);
    assert.equal(await cache.has(file), true, 'in use: kept');
    await cache.touch(file.sha256);
    assert.deepEqual(await cache.sweep(hourMs, new Set(), Date.now()), [], 'just used: kept');
    assert.deepEqual(await cache.sweep(hourMs, new Set(), later), [file.sha256]);
  });
});
