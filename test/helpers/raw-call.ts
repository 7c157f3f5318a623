import { Client, Metadata, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { CLIENT_CHANNEL_OPTIONS } from '../../lib/grpc-client';
import { channelCredentials, type TlsFiles } from '../../lib/tls';

/**
 * gRPC calls with requests encoded beforehand, as bytes: a test can send what a Baton client
 * never would (values over every limit) and time only the service's answer, not the client's
 * own encoding of megabytes.
 */

/** How a call ended: its status (code, details, trailers) and how long the answer took, in ms. */
export interface RawOutcome {
  status: StatusObject;
  ms: number;
}

/** The kind of method: a unary call, a server stream, or a bidi stream (one message sent, then half-closed). */
export type RawKind = 'unary' | 'server-stream' | 'bidi';

const raw = (b: Buffer): Buffer => b;

/** A client for rawCall: no retries (a refused call must be answered once) and no send limit (the server's is tested). */
export function rawClient(address: string, tls: TlsFiles): Client {
  const options = { ...CLIENT_CHANNEL_OPTIONS };
  delete options['grpc.service_config'];
  return new Client(address, channelCredentials(tls), { ...options, 'grpc.enable_retries': 0, 'grpc.max_send_message_length': -1 });
}

/**
 * Sends `request` to `path` at `address` and resolves with how the call ended (deadline
 * `deadlineMs`), on a connection of its own unless `shared` is given.
 */
export function rawCall(address: string, tls: TlsFiles, path: string, kind: RawKind, request: Uint8Array, deadlineMs = 10_000, shared?: Client): Promise<RawOutcome> {
  const client = shared ?? rawClient(address, tls);
  const bytes = Buffer.from(request);
  const deadline = Date.now() + deadlineMs;
  const start = performance.now();
  return new Promise<RawOutcome>((resolve) => {
    const done = (status: StatusObject) => {
      if (!shared) client.close();
      resolve({ status, ms: performance.now() - start });
    };
    if (kind === 'unary') {
      const call = client.makeUnaryRequest(path, raw, raw, bytes, new Metadata(), { deadline }, (_err: ServiceError | null) => undefined);
      call.on('status', done);
    } else if (kind === 'server-stream') {
      const call = client.makeServerStreamRequest(path, raw, raw, bytes, new Metadata(), { deadline });
      call.on('data', () => undefined);
      call.on('error', () => undefined);
      call.on('status', done);
    } else {
      const call = client.makeBidiStreamRequest(path, raw, raw, new Metadata(), { deadline });
      call.on('data', () => undefined);
      call.on('error', () => undefined);
      call.on('status', done);
      call.write(bytes);
      call.end();
    }
  });
}
