import { Client, Metadata, type ClientReadableStream, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { CLIENT_CHANNEL_OPTIONS } from '../../lib/grpc-client';
import { channelCredentials, type TlsFiles } from '../../lib/tls';

/**
 * gRPC calls with requests encoded beforehand, as bytes: a test can send what a Baton client
 * never would (values over every limit, an agent stream claiming another node) and time only
 * the service's answer, not the client's own encoding of megabytes.
 */

/** How a call ended: its status (code, details, trailers), the messages the service sent, and how long the answer took, in ms. */
export interface RawOutcome {
  status: StatusObject;
  responses: Buffer[];
  ms: number;
}

/**
 * The kind of method: a unary call, a server stream, a bidi stream whose messages are sent and
 * then half-closed (`bidi`), or left open until the service ends the call (`bidi-open`, as an
 * agent's Connect stream is).
 */
export type RawKind = 'unary' | 'server-stream' | 'bidi' | 'bidi-open';

const raw = (b: Buffer): Buffer => b;

/** A client for rawCall: no retries (a refused call must be answered once) and no send limit (the server's is tested). */
export function rawClient(address: string, tls: TlsFiles): Client {
  const options = { ...CLIENT_CHANNEL_OPTIONS };
  delete options['grpc.service_config'];
  return new Client(address, channelCredentials(tls), { ...options, 'grpc.enable_retries': 0, 'grpc.max_send_message_length': -1 });
}

/**
 * Sends `request` (one message, or several on a bidi stream) to `path` at `address` and
 * resolves with how the call ended (deadline `deadlineMs`), on a connection of its own unless
 * `shared` is given.
 */
export function rawCall(
  address: string,
  tls: TlsFiles,
  path: string,
  kind: RawKind,
  request: Uint8Array | readonly Uint8Array[],
  deadlineMs = 10_000,
  shared?: Client,
): Promise<RawOutcome> {
  const client = shared ?? rawClient(address, tls);
  // Views, not copies: a test sending megabytes in a loop must not spend its time copying them.
  const messages = (request instanceof Uint8Array ? [request] : request).map((m) =>
    Buffer.isBuffer(m) ? m : Buffer.from(m.buffer, m.byteOffset, m.byteLength),
  );
  const deadline = Date.now() + deadlineMs;
  const responses: Buffer[] = [];
  const start = performance.now();
  return new Promise<RawOutcome>((resolve) => {
    const done = (status: StatusObject) => {
      if (!shared) client.close();
      resolve({ status, responses, ms: performance.now() - start });
    };
    if (kind === 'unary') {
      const call = client.makeUnaryRequest(path, raw, raw, messages[0], new Metadata(), { deadline }, (_err: ServiceError | null, res?: Buffer) => {
        if (res) responses.push(res);
      });
      call.on('status', done);
      return;
    }
    const call =
      kind === 'server-stream'
        ? client.makeServerStreamRequest(path, raw, raw, messages[0], new Metadata(), { deadline })
        : client.makeBidiStreamRequest(path, raw, raw, new Metadata(), { deadline });
    call.on('data', (m: Buffer) => responses.push(m));
    call.on('error', () => undefined); // the status event carries the outcome
    call.on('status', done);
    if (kind === 'server-stream') return;
    const stream = call as ReturnType<Client['makeBidiStreamRequest']>;
    for (const m of messages) stream.write(m);
    if (kind === 'bidi') stream.end();
  });
}

/** Reads a server stream of a generated client to its end: its error, or undefined when it ended OK. */
export function streamOutcome(stream: ClientReadableStream<unknown>): Promise<ServiceError | undefined> {
  return new Promise((resolve) => {
    stream.on('data', () => undefined);
    stream.on('error', (err: ServiceError) => resolve(err));
    stream.on('end', () => resolve(undefined));
  });
}
