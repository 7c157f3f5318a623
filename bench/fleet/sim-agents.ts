import { connect as netConnect } from 'node:net';
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { AgentGatewayServiceService, ConnectRequest, ConnectResponse, type RunCommand } from '../../gen/baton/v1/agent_gateway_service';
import { NodeState, type NodeResult } from '../../gen/baton/v1/run';
import { parseTaskOutput } from '../../lib/task-output';
import { serveWorker } from './worker-process';

/**
 * A benchmark worker holding many simulated agents (forked by bench/fleet-bench.ts). Each is a
 * light client speaking the real Connect protocol of docs/agent-protocol.md over node:http2 with
 * gRPC's length-prefixed framing: a Hello, the Welcome awaited, a Heartbeat every interval the
 * Welcome asks for, every DownloadCommand answered `ok` (a warm cache), and every RunCommand
 * executed in-process: counted per task id, then TaskStarted and a complete TaskFinished (the
 * trivial task's output) sent at once, and the ResultAck recorded. The scheduler cannot tell
 * them from real agents; what is left out is the node's own work (file checks, spool, spawn),
 * so a run measures orchestration alone. A full agent per node (a grpc-js channel, cache, spool
 * and task runner each) does not fit 100,000 times on one machine beside the services.
 *
 * Counting executions is the point: a RunCommand is never deduplicated here (a real agent would
 * skip a task id it has a spool directory for), so a scheduler that sends a run twice to a node,
 * or never, shows in `counts`. A stream that ends is not reconnected: the node's run stays
 * unfinished and the benchmark reports why the stream ended.
 *
 * Requests:
 * - `start` { address, identities, agentsPerConnection, localAddressBase }: connects them, at
 *   most CONNECT_BATCH at a time, and resolves once every one has been welcomed;
 * - `counts` { taskId }: what this worker's agents did for that run (AgentCounts);
 * - `stop`: closes every session and exits.
 */

/** Connections opened at once; more at once overflow the scheduler's listen backlog. */
const CONNECT_BATCH = 250;
/** How long one agent waits for its Welcome, in ms. */
const WELCOME_DEADLINE_MS = 120_000;
/**
 * Connections from one local address. Every connection to the scheduler's one address and port
 * needs its own local port, and Linux hands out about 28,000 ephemeral ports per local address,
 * so larger fleets spread over several loopback addresses (all of 127.0.0.0/8 is local).
 */
const CONNECTIONS_PER_LOCAL_ADDRESS = 20_000;

/** What the agents of one worker did for one task id. */
export interface AgentCounts {
  /** Agents in this worker. */
  agents: number;
  /** Agents that executed the task exactly once. */
  once: number;
  /** Agents that never received its RunCommand. */
  never: number;
  /** Agents that received its RunCommand more than once. */
  repeated: number;
  /** Agents whose TaskFinished was acknowledged. */
  acked: number;
  /** Agents whose stream has ended (see `endedExample`). */
  ended: number;
  /** Why the first ended stream ended, when one did. */
  endedExample?: string;
}

/** The trivial task's output, as the real agent would report it. */
const STDOUT = '{"ok": true, "bench": "trivial"}\n';
/** The trivial task's run time reported, in seconds. */
const RUNTIME_S = 0.002;

/** One simulated node. */
interface SimAgent {
  identity: string;
  stream?: ClientHttp2Stream;
  /** RunCommands received per task id. */
  executions: Map<string, number>;
  /** Task ids whose TaskFinished the scheduler acknowledged. */
  acked: Set<string>;
  /** Why the stream ended, once it did. */
  ended?: string;
}

const agents: SimAgent[] = [];
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

function send(agent: SimAgent, message: ConnectRequest['message']): void {
  const stream = agent.stream;
  if (stream && !stream.closed && !stream.destroyed) stream.write(frame({ traceContext: {}, message }));
}

/** Executes a RunCommand in-process: counted, then started and finished at once. */
function run(agent: SimAgent, command: RunCommand): void {
  agent.executions.set(command.taskId, (agent.executions.get(command.taskId) ?? 0) + 1);
  const startTime = new Date();
  send(agent, { $case: 'taskStarted', value: { taskId: command.taskId, startTime } });
  const result: NodeResult = {
    host: agent.identity,
    taskId: command.taskId,
    task: command.task,
    callerid: command.caller,
    state: NodeState.NODE_STATE_SUCCEEDED,
    exitcode: 0,
    stdout: STDOUT,
    stderr: '',
    value: parseTaskOutput(command.task, STDOUT, '', 0),
    completed: true,
    runtime: RUNTIME_S,
    startTime,
    statuscode: 0,
    statusmsg: '',
  };
  send(agent, { $case: 'taskFinished', value: { result } });
}

/** Opens one agent's Connect stream on `session`; resolves at its Welcome. */
function connectAgent(session: ClientHttp2Session, agent: SimAgent): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${agent.identity}: no Welcome within ${WELCOME_DEADLINE_MS} ms`)), WELCOME_DEADLINE_MS);
    const stream = session.request({
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: AgentGatewayServiceService.connect.path,
      [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
      [constants.HTTP2_HEADER_TE]: 'trailers',
    });
    agent.stream = stream;
    const end = (why: string) => {
      agent.ended ??= why;
      clearTimeout(timer);
      reject(new Error(`${agent.identity}: ${why}`));
    };
    stream.on('trailers', (trailers: IncomingHttpHeaders) => end(`stream ended: grpc-status ${String(trailers['grpc-status'])} ${decodeURIComponent(String(trailers['grpc-message'] ?? ''))}`));
    stream.on('error', (err: Error) => end(`stream error: ${err.message}`));
    stream.on('close', () => end('stream closed'));
    readMessages(stream, (m) => {
      switch (m.message?.$case) {
        case 'welcome': {
          clearTimeout(timer);
          const beat = setInterval(() => send(agent, { $case: 'heartbeat', value: { sendTime: new Date(), runningTasks: 0 } }), m.message.value.heartbeatIntervalS * 1000);
          timers.push(beat);
          resolve();
          return;
        }
        case 'download':
          send(agent, { $case: 'downloadResult', value: { requestId: m.message.value.requestId, ok: true, downloaded: 0, error: '' } });
          return;
        case 'run':
          run(agent, m.message.value);
          return;
        case 'resultAck':
          agent.acked.add(m.message.value.taskId);
          return;
        default:
        // Heartbeat answers and cancels need nothing from a node whose tasks end at once.
      }
    });
    send(agent, {
      $case: 'hello',
      value: { identity: agent.identity, facts: { bench_simulated: true }, classes: ['baton_bench'], agents: ['bolt_tasks'], version: 'bench-simulated', unacknowledgedResults: [] },
    });
  });
}

/** Opens one HTTP/2 connection (its own TCP connection) from `localAddress`. */
function openSession(address: string, localAddress: string): ClientHttp2Session {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon);
  const port = Number(address.slice(colon + 1));
  const session = connect(`http://${address}`, { createConnection: () => netConnect({ host, port, localAddress }) });
  // Errors reach every stream of the session, which records them; this keeps them from being unhandled.
  session.on('error', () => undefined);
  sessions.push(session);
  return session;
}

async function start(msg: Record<string, unknown>): Promise<number> {
  const address = String(msg.address);
  const identities = msg.identities as string[];
  const perConnection = Number(msg.agentsPerConnection);
  const base = String(msg.localAddressBase);
  const fresh = identities.map((identity): SimAgent => ({ identity, executions: new Map(), acked: new Set() }));
  agents.push(...fresh);
  let connection = sessions.length;
  for (let i = 0; i < fresh.length; i += CONNECT_BATCH * perConnection) {
    const batch: Promise<void>[] = [];
    for (let j = i; j < Math.min(fresh.length, i + CONNECT_BATCH * perConnection); j += perConnection) {
      const session = openSession(address, `${base}.${1 + Math.floor(connection++ / CONNECTIONS_PER_LOCAL_ADDRESS)}`);
      for (const agent of fresh.slice(j, j + perConnection)) batch.push(connectAgent(session, agent));
    }
    await Promise.all(batch);
  }
  return agents.length;
}

function counts(msg: Record<string, unknown>): Promise<AgentCounts> {
  const taskId = String(msg.taskId);
  const c: AgentCounts = { agents: agents.length, once: 0, never: 0, repeated: 0, acked: 0, ended: 0 };
  for (const agent of agents) {
    const n = agent.executions.get(taskId) ?? 0;
    if (n === 0) c.never++;
    else if (n === 1) c.once++;
    else c.repeated++;
    if (agent.acked.has(taskId)) c.acked++;
    if (agent.ended !== undefined) {
      c.ended++;
      c.endedExample ??= `${agent.identity}: ${agent.ended}`;
    }
  }
  return Promise.resolve(c);
}

serveWorker({ start, counts }, async () => {
  for (const t of timers) clearInterval(t);
  await Promise.all(sessions.map((s) => new Promise<void>((resolve) => (s.closed ? resolve() : s.close(() => resolve())))));
});
