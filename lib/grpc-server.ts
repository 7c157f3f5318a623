import {
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type UntypedServiceImplementation,
  type sendUnaryData,
} from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { CallerBudgets, type CallerBudgetOptions } from './caller-budget';
import { toServiceError } from './errors';
import type { Logger } from './logger';
import { allowedRolesByPath, roleInterceptor, type MethodRoles } from './method-roles';
import { limitsInterceptor } from './request-limits';
import { addServerReflection } from './server-reflection';
import { withPort } from './host-port';
import { serverCredentials, type TlsFiles } from './tls';

/** How long a draining server waits for calls to finish before cutting them. */
export const DEFAULT_DRAIN_GRACE_MS = 10_000;

/** One service to serve: its generated definition, its handlers, and its full proto name. */
export interface ServiceRegistration {
  /** Full proto name, for example `baton.v1.MetadataService` (used for health status). */
  name: string;
  definition: ServiceDefinition;
  implementation: UntypedServiceImplementation;
  /**
   * Which certificate roles may call each method, enforced whenever the server runs with TLS
   * (lib/method-roles.ts); default ANY_ROLE (any certificate with a Baton role). Declared by
   * each service beside its implementation.
   */
  roles?: MethodRoles;
}

/** Options of `startServer`. */
export interface ServerOptions {
  /** host:port to bind; port 0 picks a free port. */
  listen: string;
  services: ServiceRegistration[];
  log: Logger;
  tls?: TlsFiles;
  /** Grace period of a drain in ms; default DEFAULT_DRAIN_GRACE_MS. */
  drainGraceMs?: number;
  /**
   * Largest message this server accepts, in bytes; default SERVER_MAX_RECEIVE_MESSAGE_BYTES,
   * sized for the scheduler's Connect stream. A server whose requests are all small (the
   * metadata service: METADATA_MAX_RECEIVE_MESSAGE_BYTES) refuses large ones before decoding them.
   */
  maxReceiveMessageBytes?: number;
  /**
   * host:port of a second, plaintext listener that serves `grpc.health.v1.Health` alone (the
   * same statuses as the main one), for probes that speak no TLS, like the kubelet's `grpc`
   * probe; default none.
   */
  healthListen?: string;
  /** Each caller's request budget (lib/caller-budget.ts, settings `caller-requests-per-s`, `caller-request-burst`); default its defaults. */
  callerBudget?: CallerBudgetOptions;
}

/** A started server. */
export interface RunningServer {
  /** The bound address, host:port, with the real port when 0 was asked for. */
  address: string;
  /** The bound address of the plaintext health listener, when `healthListen` asked for one. */
  healthAddress?: string;
  /** Registers a callback run when draining starts, to end long-lived streams. */
  onDrain(callback: () => void): void;
  /** Stops accepting calls, ends streams, waits up to the grace period, then closes. */
  drain(): Promise<void>;
}

/**
 * Largest message a Baton server accepts, in bytes, so that no caller can make a server hold
 * unbounded memory; a bigger one ends its call with RESOURCE_EXHAUSTED before any handler sees it.
 * The largest legitimate messages are an agent's Hello (at most 4 MiB of re-sent results, agent.ts
 * MAX_HELLO_RESULTS_BYTES, plus its facts) and a TaskFinished at the agent's largest output cap (2
 * MiB of stdout, 2 MiB of stderr, and the value parsed from stdout, whose protobuf Struct can be
 * ~5x the JSON text: ~15 MiB); a RunTask (≤ 100 KiB input, ≤ 64 Ki characters of filter), a
 * RecordNodeResults of one result and a ReadTaskFile request are far smaller. grpc-js serves every
 * service of a server with one limit, so it is sized for the scheduler's Connect stream.
 */
export const SERVER_MAX_RECEIVE_MESSAGE_BYTES = 16 * 1024 * 1024;

/**
 * Largest message a Baton server sends, in bytes: the client's receive limit
 * (lib/grpc-client.ts CLIENT_MAX_RECEIVE_MESSAGE_BYTES). The largest answer is a GetRunStatus,
 * which holds every node's result (each ≤ ~8 MiB at the default output cap) in one message.
 */
export const SERVER_MAX_SEND_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * Largest message the metadata service accepts, in bytes: its requests hold a few names (each
 * bounded far lower by lib/limits.ts), so a megabyte is never legitimate, and refusing it from
 * its length prefix spares decoding it.
 */
export const METADATA_MAX_RECEIVE_MESSAGE_BYTES = 1024 * 1024;

/**
 * Server-side keepalive. Pings every 30 s on connections without traffic so that a vanished
 * agent (host powered off, network cut: no FIN ever arrives) is detected within ~40 s rather
 * than holding a "connected" stream forever; clients may ping every 10 s (they ping every 20 s).
 * Message sizes: SERVER_MAX_RECEIVE_MESSAGE_BYTES and SERVER_MAX_SEND_MESSAGE_BYTES.
 */
const SERVER_CHANNEL_OPTIONS = {
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 10_000,
  'grpc.max_receive_message_length': SERVER_MAX_RECEIVE_MESSAGE_BYTES,
  'grpc.max_send_message_length': SERVER_MAX_SEND_MESSAGE_BYTES,
  // Channelz (grpc-js's record of every connection and call, with counters and traces) is read
  // through a channelz service, which no Baton process serves; kept, it was work on every call,
  // every agent's stream among them.
  'grpc.enable_channelz': 0,
};

/**
 * Starts a gRPC server with Baton's standard parts: gRPC health checking (`grpc.health.v1`,
 * overall and per service), server reflection, keepalive, mutual TLS with each method's roles
 * enforced when configured, and a graceful drain on SIGTERM/SIGINT.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  // With TLS every call is checked against the roles of its method before any handler runs; a
  // plaintext (`insecure`) server has no certificates to check. Then every message is checked
  // against its caller's request budget and the size limits of its fields (lib/request-limits.ts).
  // The first interceptor listed sees a call first, so a caller without the role never learns about limits.
  const roles = options.tls?.cert ? [roleInterceptor(allowedRolesByPath(options.services), options.log)] : [];
  const interceptors = [...roles, limitsInterceptor(options.log, new CallerBudgets(options.callerBudget))];
  const server = new Server({
    ...SERVER_CHANNEL_OPTIONS,
    'grpc.max_receive_message_length': options.maxReceiveMessageBytes ?? SERVER_MAX_RECEIVE_MESSAGE_BYTES,
    interceptors,
  });
  const health = new HealthImplementation({ '': 'SERVING', ...Object.fromEntries(options.services.map((s) => [s.name, 'SERVING'])) });
  health.addToServer(server);
  // Our own reflection: @grpc/reflection drops imports, so clients cannot resolve Timestamp or
  // Struct (lib/server-reflection.ts).
  addServerReflection(server, [...options.services.map((s) => s.name), 'grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection'], options.log);
  for (const s of options.services) server.addService(s.definition, s.implementation);

  const address = await bind(server, options.listen, serverCredentials(options.tls ?? {}));
  // Nothing but health on the plaintext listener: no reflection, no Baton service.
  let healthServer: Server | undefined;
  let healthAddress: string | undefined;
  if (options.healthListen !== undefined) {
    healthServer = new Server();
    health.addToServer(healthServer);
    try {
      healthAddress = await bind(healthServer, options.healthListen, ServerCredentials.createInsecure());
    } catch (err) {
      server.forceShutdown();
      throw err;
    }
  }
  const drainCallbacks: Array<() => void> = [];
  let draining: Promise<void> | undefined;

  const drainMain = (): Promise<void> =>
    new Promise<void>((resolve) => {
      options.log.info({ address }, 'draining');
      for (const s of ['', ...options.services.map((x) => x.name)]) health.setStatus(s, 'NOT_SERVING');
      for (const cb of drainCallbacks) cb();
      const timer = setTimeout(() => {
        options.log.warn('drain grace period over; closing remaining calls');
        server.forceShutdown();
        resolve();
      }, options.drainGraceMs ?? DEFAULT_DRAIN_GRACE_MS);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  // The health listener answers NOT_SERVING for as long as the drain lasts, then closes.
  const drain = (): Promise<void> => {
    draining ??= drainMain().then(() => healthServer?.forceShutdown());
    return draining;
  };
  options.log.info(healthAddress ? { address, healthAddress } : { address }, 'listening');
  return { address, healthAddress, drain, onDrain: (cb) => drainCallbacks.push(cb) };
}

/** Binds `server` to host:port and resolves with host:port as bound (the real port when 0 was asked for). */
async function bind(server: Server, listen: string, credentials: ServerCredentials): Promise<string> {
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(listen, credentials, (err, p) => (err ? reject(err) : resolve(p)));
  });
  return withPort(listen, port);
}

/** Runs `drain` on SIGTERM or SIGINT, then `after` (to close Redis and such) and exits. */
export function drainOnSignals(log: Logger, drain: () => Promise<void>, after: () => Promise<void> = async () => {}): void {
  const stop = (signal: string) => {
    log.info({ signal }, 'stopping');
    drain()
      .then(after)
      .then(() => process.exit(0))
      .catch((err: unknown) => {
        log.error({ err }, 'error while stopping');
        process.exit(1);
      });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

/** Wraps an async unary handler: its result is sent, anything it throws goes through the error boundary. */
export function unaryHandler<Req, Res>(log: Logger, fn: (request: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res> | Res) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    // Through a promise so that a synchronous throw reaches the error boundary too.
    Promise.resolve(call.request)
      .then((request) => fn(request, call))
      .then(
        (res) => callback(null, res),
        (err: unknown) => callback(toServiceError(err, log)),
      );
  };
}

/** Wraps an async server-streaming handler: the stream ends when it returns, with a status when it throws. */
export function serverStreamHandler<Req, Res>(log: Logger, fn: (request: Req, call: ServerWritableStream<Req, Res>) => Promise<void>) {
  return (call: ServerWritableStream<Req, Res>): void => {
    Promise.resolve(call.request)
      .then((request) => fn(request, call))
      .then(
        () => call.end(),
        (err: unknown) => call.emit('error', toServiceError(err, log)),
      );
  };
}
