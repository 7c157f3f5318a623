import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import type { ReadTaskFileResponse } from '../../gen/baton/v1/metadata_service';
import { FailedPreconditionError, NotFoundError } from '../../lib/errors';

/** Bytes per ReadTaskFile message (the proto promises at most 64 KiB). */
export const CHUNK_SIZE_BYTES = 64 * 1024;

/** Hashes the whole open file from offset 0. */
async function hashHandle(handle: FileHandle, buffer: Buffer): Promise<{ sha256: string; sizeBytes: number }> {
  const hash = createHash('sha256');
  let position = 0;
  for (;;) {
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  return { sha256: hash.digest('hex'), sizeBytes: position };
}

/**
 * The content of one task file as ReadTaskFile messages. The file is opened once and hashed
 * before anything is sent, so the first message carries the sha256 of what follows, and a
 * caller's expected sha256 is checked against the file as it is now, not as the catalog last
 * saw it. An editor or `git checkout` replaces files by rename, which leaves the open file
 * intact; a file rewritten in place while it is being sent is caught by hashing the sent
 * bytes again, and the stream then ends with FAILED_PRECONDITION instead of a clean end.
 */
export async function* taskFileChunks(absPath: string, path: string, expectedSha256: string): AsyncGenerator<ReadTaskFileResponse> {
  const handle = await open(absPath, 'r').catch((err: NodeJS.ErrnoException) => {
    throw new NotFoundError('TASK_FILE_NOT_FOUND', `task file '${path}' cannot be read now (${err.code ?? err.message})`, { path });
  });
  try {
    const buffer = Buffer.alloc(CHUNK_SIZE_BYTES);
    const { sha256, sizeBytes } = await hashHandle(handle, buffer);
    if (expectedSha256 && expectedSha256 !== sha256) {
      throw new FailedPreconditionError(
        'TASK_FILE_CHANGED',
        `task file '${path}' has changed: its sha256 is now ${sha256}, not ${expectedSha256}; fetch the task again`,
        {
          path,
          sha256,
        },
      );
    }
    const sent = createHash('sha256');
    let offset = 0;
    do {
      const { bytesRead } = await handle.read(buffer, 0, CHUNK_SIZE_BYTES, offset);
      // Copy: the buffer is reused for the next read while this message may still be queued.
      const data = Buffer.from(buffer.subarray(0, bytesRead));
      sent.update(data);
      // An empty file is still one message, so the caller always learns size and sha256.
      if (bytesRead > 0 || offset === 0) yield { data, offset, sizeBytes: offset === 0 ? sizeBytes : 0, sha256: offset === 0 ? sha256 : '' };
      offset += bytesRead;
      if (bytesRead === 0) break;
    } while (offset < sizeBytes);
    if (offset !== sizeBytes || sent.digest('hex') !== sha256) {
      throw new FailedPreconditionError('TASK_FILE_CHANGED', `task file '${path}' changed while it was being sent; fetch it again`, { path });
    }
  } finally {
    await handle.close();
  }
}

/**
 * The chunks of content held whole in memory (a file fetched from Puppet Server), by the same
 * rules: the sha256 announced is that of exactly these bytes, and a caller's expected sha256
 * that differs is FAILED_PRECONDITION before anything is sent.
 */
export function* bufferChunks(data: Buffer, path: string, expectedSha256: string): Generator<ReadTaskFileResponse> {
  const sha256 = createHash('sha256').update(data).digest('hex');
  if (expectedSha256 && expectedSha256 !== sha256) {
    throw new FailedPreconditionError(
      'TASK_FILE_CHANGED',
      `task file '${path}' has changed: its sha256 is now ${sha256}, not ${expectedSha256}; fetch the task again`,
      { path, sha256 },
    );
  }
  let offset = 0;
  do {
    const chunk = data.subarray(offset, offset + CHUNK_SIZE_BYTES);
    yield { data: chunk, offset, sizeBytes: offset === 0 ? data.length : 0, sha256: offset === 0 ? sha256 : '' };
    offset += chunk.length;
  } while (offset < data.length);
}
