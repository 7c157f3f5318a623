import { Metadata, status, type CallOptions, type ChannelOptions, type Client, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { channelCredentials, type TlsFiles } from './tls';

/** Deadline of a unary call when the caller gives none. */
export const DEFAULT_DEADLINE_MS = 10_000;

/**
 * Retries calls that failed with UNAVAILABLE (a service restarting or not up yet) with
 * exponential backoff: 0.1 s, 0.2 s, 0.4 s, 0.8 s, 1.6 s. Only UNAVAILABLE is retried, since
 * it means the request never reached a handler.
 */
const RETRY_SERVICE_CONFIG = JSON.stringify({
  methodConfig: [
    {
      name: [{}],
      retryPolicy: {
        maxAttempts: 5,
        initialBackoff: '0.1s',
        maxBackoff: '2s',
        backoffMultiplier: 2,
        retryableStatusCodes: ['UNAVAILABLE'],
      },
    },
  ],
});

/**
 * Largest message a Baton client accepts, in bytes (grpc-js's default is 4 MiB). A
 * GetRunStatus answers every node's result in one message, and one node's result alone may
 * be ~8 MiB at the agent's default output cap (1 MiB of stdout and of stderr, and the value
 * parsed from stdout), so 4 MiB failed the status of a run where a few nodes printed a lot.
 * The servers send at most as much (lib/grpc-server.ts SERVER_MAX_SEND_MESSAGE_BYTES).
 */
export const CLIENT_MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * Largest message a Baton client sends, in bytes: what the servers accept
 * (lib/grpc-server.ts SERVER_MAX_RECEIVE_MESSAGE_BYTES), so a message too large fails in the
 * sender with RESOURCE_EXHAUSTED instead of crossing the network to be refused.
 */
export const CLIENT_MAX_SEND_MESSAGE_BYTES = 16 * 1024 * 1024;

/** Channel options of every Baton client. */
export const CLIENT_CHANNEL_OPTIONS: ChannelOptions = {
  'grpc.service_config': RETRY_SERVICE_CONFIG,
  'grpc.enable_retries': 1,
  // Ping an idle long-lived stream every 20 s and give up after 10 s without an answer, so an
  // agent notices a dead scheduler (or a dropped NAT mapping) within half a minute.
  'grpc.keepalive_time_ms': 20_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  // Reconnect quickly after a restart of the peer instead of grpc's default 1 s → 120 s.
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 5_000,
  'grpc.max_receive_message_length': CLIENT_MAX_RECEIVE_MESSAGE_BYTES,
  'grpc.max_send_message_length': CLIENT_MAX_SEND_MESSAGE_BYTES,
  // Channelz (grpc-js's record of every channel, connection and call, with timestamped traces
  // and counters) is read through a channelz service, which no Baton process serves: keeping it
  // was work on every call and connection, the `baton` CLI's first ones included.
  'grpc.enable_channelz': 0,
};

/** A generated grpc-js client class (ts-proto `outputServices=grpc-js`). */
type ClientClass<C extends Client> = new (address: string, credentials: ReturnType<typeof channelCredentials>, options?: ChannelOptions) => C;

/** Makes a client of a Baton service at `address` (host:port, or a gRPC target such as `dns:///name:port`); `extra` adds channel options. */
export function makeClient<C extends Client>(Ctor: ClientClass<C>, address: string, tls: TlsFiles = {}, extra: ChannelOptions = {}): C {
  return new Ctor(address, channelCredentials(tls), { ...CLIENT_CHANNEL_OPTIONS, ...extra });
}

/** Per-call options of `unary`. */
export interface UnaryOptions {
  /** Deadline in ms from now; default DEFAULT_DEADLINE_MS. */
  deadlineMs?: number;
  /** Request metadata. */
  metadata?: Metadata;
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/**
 * Calls a unary method with a deadline and returns a promise of its response. A call whose own
 * deadline passed fails DEADLINE_EXCEEDED naming the method and the deadline: a service making
 * several calls passes the error on, and grpc-js's message alone does not say which call it was.
 */
export function unary<Req, Res>(client: Client, method: UnaryMethod<Req, Res>, request: Req, options: UnaryOptions = {}): Promise<Res> {
  const deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
  const deadline = new Date(Date.now() + deadlineMs);
  return new Promise((resolve, reject) => {
    method.call(client, request, options.metadata ?? new Metadata(), { deadline }, (err, res) => {
      if (!err) resolve(res);
      else reject(err.code === status.DEADLINE_EXCEEDED && LOCAL_DEADLINE.test(err.details) ? namedDeadline(err, method, deadlineMs) : err);
    });
  });
}

/** How grpc-js words a deadline that passed on the client (a server's own DEADLINE_EXCEEDED is passed on as it came). */
const LOCAL_DEADLINE = /^Deadline exceeded/;

/** `err` saying which method gave no answer within how long; grpc-js keeps the method's path (`/baton.v1.ResultsService/UpdateRunState`) on the client's method. */
function namedDeadline(err: ServiceError, method: unknown, deadlineMs: number): ServiceError {
  const path = (method as { path?: unknown }).path;
  const parts = typeof path === 'string' ? /([^/.]+)\/([^/]+)$/.exec(path) : null;
  const name = parts ? `${parts[1]}.${parts[2]}` : 'the call';
  const seconds = Math.round(deadlineMs / 100) / 10;
  err.details = `${name} gave no answer within its deadline of ${seconds} s (${err.details})`;
  err.message = `${err.code} ${status[err.code]}: ${err.details}`;
  return err;
}
