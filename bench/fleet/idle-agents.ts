import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { AgentGatewayServiceService, ConnectRequest, ConnectResponse } from '../../gen/baton/v1/agent_gateway_service';
import { serveWorker } from './worker-process';

/**
 * A benchmark worker holding many idle agents connected to the scheduler (forked by
 * bench/run-bench.ts for the memory-per-agent figure). Each is a light client speaking the real
 * Connect protocol of docs/agent-protocol.md — its own TCP connection and HTTP/2 session, one
 * Connect stream, a Hello, the Welcome awaited, a Heartbeat every interval the Welcome asks for —
 * over node:http2 with gRPC's length-prefixed framing, because 10,000 full agents (each with a
 * grpc-js channel, cache, spool and task runner) do not fit on the benchmark machine besides
 * the services. The scheduler cannot tell them from real agents. Requests:
 * - `start` { address, identities }: connects them, at most CONNECT_BATCH at a time, and
 *   resolves once every one has been welcomed;
 * - `stop`: closes every session and exits.
 */

/** Sessions opened at once; more at once overflow the scheduler's listen backlog. */
const CONNECT_BATCH = 250;
/** How long one agent waits for its Welcome, in ms. */
const WELCOME_DEADLINE_MS = 120_000;

const sessions: ClientHttp2Session[] = [];
const timers: NodeJS.Timeout[] = [];

/** A message in gRPC's wire framing: compressed flag 0, 4-byte big-endian length, the bytes. */
function frame(message: ConnectRequest): Buffer {
  const body = ConnectRequest.encode(message).finish();
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** Calls `onMessage` for every whole gRPC message read from `stream`. */
function readMessages(stream: ClientHttp2Stream, onMessage: (m: ConnectResponse) => void): void {
  let buffered: Buffer = Buffer.alloc(0);
  stream.on('data', (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 5) {
      const length = buffered.readUInt32BE(1);
      if (buffered.length < 5 + length) break;
      onMessage(ConnectResponse.decode(buffered.subarray(5, 5 + length)));
      buffered = buffered.subarray(5 + length);
    }
  });
}

/** Connects one idle agent; resolves at its Welcome. */
function connectOne(address: string, identity: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://${address}`);
    sessions.push(session);
    const timer = setTimeout(() => reject(new Error(`${identity}: no Welcome within ${WELCOME_DEADLINE_MS} ms`)), WELCOME_DEADLINE_MS);
    session.once('error', (err: Error) => reject(new Error(`${identity}: ${err.message}`)));
    const stream = session.request({
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: AgentGatewayServiceService.connect.path,
      [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
      [constants.HTTP2_HEADER_TE]: 'trailers',
    });
    stream.once('error', (err: Error) => reject(new Error(`${identity}: ${err.message}`)));
    readMessages(stream, (m) => {
      if (m.message?.$case !== 'welcome') return;
      clearTimeout(timer);
      const intervalMs = m.message.value.heartbeatIntervalS * 1000;
      const beat = setInterval(() => stream.write(frame({ traceContext: {}, message: { $case: 'heartbeat', value: { sendTime: new Date(), runningTasks: 0 } } })), intervalMs);
      timers.push(beat);
      resolve();
    });
    stream.write(
      frame({
        traceContext: {},
        message: {
          $case: 'hello',
          value: { identity, facts: { bench_idle: true }, classes: ['baton_bench'], agents: ['bolt_tasks'], version: 'bench-idle', unacknowledgedResults: [] },
        },
      }),
    );
  });
}

async function start(msg: Record<string, unknown>): Promise<number> {
  const address = String(msg.address);
  const identities = msg.identities as string[];
  for (let i = 0; i < identities.length; i += CONNECT_BATCH) {
    await Promise.all(identities.slice(i, i + CONNECT_BATCH).map((id) => connectOne(address, id)));
  }
  return sessions.length;
}

serveWorker({ start }, async () => {
  for (const t of timers) clearInterval(t);
  await Promise.all(sessions.map((s) => new Promise<void>((resolve) => (s.closed ? resolve() : s.close(() => resolve())))));
});
