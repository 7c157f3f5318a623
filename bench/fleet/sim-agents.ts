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
 * or never, shows in `counts`. A stream that ends is reconnected as a real agent does it (a new
 * connection after a jittered backoff, the results not acknowledged yet re-sent in the Hello),
 * and counted, with why the last one ended.
 *
 * Requests:
 * - `start` { address, identities, agentsPerConnection, localAddressBase }: connects them, at
 *   most CONNECT_BATCH at a time, and resolves once every one has been welcomed;
 * - `counts` { taskId }: what this worker's agents did for that run (AgentCounts);
 * - `stop`: closes every session and exits.
 */

/**
 * Connections a worker opens at once (then waits for their Welcomes). The scheduler's listen
 * backlog is Node's default, 511, shared by the 4 workers: more connections in flight overflow
 * it, and a connection whose handshake the kernel dropped is reset a minute later.
 */
const CONNECT_BATCH = 100;
/** How long one agent waits for its Welcome, in ms. */
const WELCOME_DEADLINE_MS = 120_000;
/**
 * Connections from one local address. Every connection to the scheduler's one address and port
 * needs its own local port, and Linux hands out about 28,000 ephemeral ports per local address,
 * so larger fleets spread over several loopback addresses (all of 127.0.0.0/8 is local).
 */
const CONNECTIONS_PER_LOCAL_ADDRESS = 20_000;
/** Reconnect backoff, as the real agent's: 200 ms doubling to 5 s, ±20 %. */
const RECONNECT_INITIAL_MS = 200;
const RECONNECT_MAX_MS = 5_000;

/** What the agents of one worker did for one task id, and how their streams fared. */
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
  /** Streams that have ended since the agents connected (each was reconnected). */
  streamsEnded: number;
  /** Agents without a welcomed stream right now. */
  disconnected: number;
  /** Why the last ended stream ended, when one did. */
  endedExample?: string;
}

/** The trivial task's output, as the real agent would report it. */
const STDOUT = '{"ok": true, "bench": "trivial"}\n';
/** The trivial task's run time reported, in seconds. */
const RUNTIME_S = 0.002;

/** One simulated node. */
interface SimAgent {
  identity: string;
  /** Local address of its connections. */
  localAddress: string;
  /** Its welcomed stream, while it has one. */
  stream?: ClientHttp2Stream;
  heartbeat?: NodeJS.Timeout;
  /** RunCommands received per task id. */
  executions: Map<string, number>;
  /** Results sent and not acknowledged yet, by task id; the next Hello re-sends them. */
  unacked: Map<string, NodeResult>;
  /** Task ids whose TaskFinished the scheduler acknowledged. */
  acked: Set<string>;
  /** Its streams that ended, why the last one did, and reconnect attempts since the last Welcome. */
  streamsEnded: number;
  lastEnd?: string;
  attempts: number;
  /** Called at the agent's first Welcome. */
  onFirstWelcome?: () => void;
}

const agents: SimAgent[] = [];
/** Open connections, with the number of streams each carries; one left without streams is closed. */
const sessions = new Map<ClientHttp2Session, number>();
/** Why a connection ended, when it did before its streams. */
const sessionEnds = new WeakMap<ClientHttp2Session, string>();
let schedulerAddress = '';
let stopping = false;

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

function write(stream: ClientHttp2Stream, message: ConnectRequest['message']): void {
  if (!stream.closed && !stream.destroyed) stream.write(frame({ traceContext: {}, message }));
}

/** Sends on the agent's welcomed stream; dropped while it has none (results go out again in the next Hello). */
function send(agent: SimAgent, message: ConnectRequest['message']): void {
  if (agent.stream) write(agent.stream, message);
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
  agent.unacked.set(command.taskId, result);
  send(agent, { $case: 'taskFinished', value: { result } });
}

/** Reconnects an agent whose stream ended, after the backoff, on a connection of its own. */
function reconnect(agent: SimAgent): void {
  if (stopping) return;
  const delayMs = Math.min(RECONNECT_MAX_MS, RECONNECT_INITIAL_MS * 2 ** agent.attempts++) * (0.8 + Math.random() * 0.4);
  setTimeout(() => {
    if (!stopping) openStream(agent, openSession(agent.localAddress));
  }, delayMs);
}

/**
 * Opens one Connect stream for `agent` on `session`. A stream that ends, before its Welcome or
 * after, is counted and the agent reconnects (as a real agent, which retries a refused or reset
 * connection as well as a lost one).
 */
function openStream(agent: SimAgent, session: ClientHttp2Session): void {
  let ended = false;
  const stream = session.request({
    [constants.HTTP2_HEADER_METHOD]: 'POST',
    [constants.HTTP2_HEADER_PATH]: AgentGatewayServiceService.connect.path,
    [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
    [constants.HTTP2_HEADER_TE]: 'trailers',
  });
  sessions.set(session, (sessions.get(session) ?? 0) + 1);
  const end = (why: string) => {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    const left = (sessions.get(session) ?? 1) - 1;
    if (left > 0) sessions.set(session, left);
    else {
      sessions.delete(session);
      session.close();
    }
    if (agent.stream === stream) {
      agent.stream = undefined;
      clearInterval(agent.heartbeat);
    }
    if (stopping) return;
    agent.streamsEnded++;
    agent.lastEnd = why;
    reconnect(agent);
  };
  const timer = setTimeout(() => {
    end(`no Welcome within ${WELCOME_DEADLINE_MS} ms`);
    stream.close(constants.NGHTTP2_CANCEL);
  }, WELCOME_DEADLINE_MS);
  stream.on('trailers', (trailers: IncomingHttpHeaders) => end(`stream ended: grpc-status ${String(trailers['grpc-status'])} ${decodeURIComponent(String(trailers['grpc-message'] ?? ''))}`));
  stream.on('error', (err: Error) => end(`stream error: ${err.message}`));
  stream.on('close', () => end(`stream closed (HTTP/2 code ${stream.rstCode ?? 'none'}${sessionEnds.get(session) ?? ''})`));
  readMessages(stream, (m) => {
    switch (m.message?.$case) {
      case 'welcome':
        clearTimeout(timer);
        agent.attempts = 0;
        agent.stream = stream;
        agent.heartbeat = setInterval(() => send(agent, { $case: 'heartbeat', value: { sendTime: new Date(), runningTasks: 0 } }), m.message.value.heartbeatIntervalS * 1000);
        agent.onFirstWelcome?.();
        agent.onFirstWelcome = undefined;
        return;
      case 'download':
        write(stream, { $case: 'downloadResult', value: { requestId: m.message.value.requestId, ok: true, downloaded: 0, error: '' } });
        return;
      case 'run':
        run(agent, m.message.value);
        return;
      case 'resultAck':
        agent.acked.add(m.message.value.taskId);
        agent.unacked.delete(m.message.value.taskId);
        return;
      default:
      // Heartbeat answers and cancels need nothing from a node whose tasks end at once.
    }
  });
  write(stream, {
    $case: 'hello',
    value: {
      identity: agent.identity,
      facts: { bench_simulated: true },
      classes: ['baton_bench'],
      agents: ['bolt_tasks'],
      version: 'bench-simulated',
      unacknowledgedResults: [...agent.unacked.values()].map((result) => ({ result })),
    },
  });
}

/** Opens one HTTP/2 connection (its own TCP connection) to the scheduler from `localAddress`. */
function openSession(localAddress: string): ClientHttp2Session {
  const colon = schedulerAddress.lastIndexOf(':');
  const host = schedulerAddress.slice(0, colon);
  const port = Number(schedulerAddress.slice(colon + 1));
  const session = connect(`http://${schedulerAddress}`, { createConnection: () => netConnect({ host, port, localAddress }) });
  // How the connection itself ended, for the streams on it to report; an error also reaches
  // every stream, and this listener keeps it from being unhandled.
  session.on('error', (err: Error) => sessionEnds.set(session, `; connection error: ${err.message}`));
  session.on('goaway', (code: number) => sessionEnds.set(session, `; the scheduler sent GOAWAY with code ${code}`));
  session.on('close', () => sessions.delete(session));
  return session;
}

/** Resolves at the agent's first Welcome; rejects, naming why its last attempt failed, after WELCOME_DEADLINE_MS. */
function firstWelcome(agent: SimAgent): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${agent.identity}: not welcomed within ${WELCOME_DEADLINE_MS} ms (last attempt: ${agent.lastEnd ?? 'no answer'})`)), WELCOME_DEADLINE_MS);
    agent.onFirstWelcome = () => {
      clearTimeout(timer);
      resolve();
    };
  });
}

async function start(msg: Record<string, unknown>): Promise<number> {
  schedulerAddress = String(msg.address);
  const identities = msg.identities as string[];
  const perConnection = Number(msg.agentsPerConnection);
  const base = String(msg.localAddressBase);
  const first = agents.length;
  const fresh = identities.map(
    (identity, i): SimAgent => ({
      identity,
      localAddress: `${base}.${1 + Math.floor((first + i) / perConnection / CONNECTIONS_PER_LOCAL_ADDRESS)}`,
      executions: new Map(),
      unacked: new Map(),
      acked: new Set(),
      streamsEnded: 0,
      attempts: 0,
    }),
  );
  agents.push(...fresh);
  for (let i = 0; i < fresh.length; i += CONNECT_BATCH * perConnection) {
    const batch: Promise<void>[] = [];
    for (let j = i; j < Math.min(fresh.length, i + CONNECT_BATCH * perConnection); j += perConnection) {
      const group = fresh.slice(j, j + perConnection);
      const session = openSession(group[0].localAddress);
      for (const agent of group) {
        batch.push(firstWelcome(agent));
        openStream(agent, session);
      }
    }
    await Promise.all(batch);
  }
  return agents.length;
}

function counts(msg: Record<string, unknown>): Promise<AgentCounts> {
  const taskId = String(msg.taskId);
  const c: AgentCounts = { agents: agents.length, once: 0, never: 0, repeated: 0, acked: 0, streamsEnded: 0, disconnected: 0 };
  for (const agent of agents) {
    const n = agent.executions.get(taskId) ?? 0;
    if (n === 0) c.never++;
    else if (n === 1) c.once++;
    else c.repeated++;
    if (agent.acked.has(taskId)) c.acked++;
    if (!agent.stream) c.disconnected++;
    c.streamsEnded += agent.streamsEnded;
    if (agent.lastEnd !== undefined) c.endedExample = `${agent.identity}: ${agent.lastEnd}`;
  }
  return Promise.resolve(c);
}

serveWorker({ start, counts }, async () => {
  stopping = true;
  for (const agent of agents) clearInterval(agent.heartbeat);
  await Promise.all([...sessions.keys()].map((s) => new Promise<void>((resolve) => (s.closed ? resolve() : s.close(() => resolve())))));
});
