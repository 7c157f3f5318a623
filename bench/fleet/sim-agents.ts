import { connect as netConnect } from 'node:net';
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { backoffDelayMs, followedHeartbeatInterval, heartbeatLoop, shuffled, STABLE_SESSION_MS } from '../../agent/connection';
import { START_HOLD_MS } from '../../agent/start-hold';
import { AgentGatewayServiceService, ConnectRequest, ConnectResponse, type RunCommand } from '../../gen/baton/v1/agent_gateway_service';
import { NodeState, type NodeResult } from '../../gen/baton/v1/run';
import { readServiceError, TOO_MANY_HELLOS, type ErrorReport } from '../../lib/errors';
import { parseTaskOutput } from '../../lib/task-output';
import { serveWorker } from './worker-process';

/**
 * A benchmark worker holding many simulated agents (forked by bench/fleet-bench.ts). Each is a
 * light client speaking the real Connect protocol of docs/agent-protocol.md over node:http2 with
 * gRPC's length-prefixed framing: a Hello, the Welcome awaited, a Heartbeat every interval the
 * Welcome asks for, every DownloadCommand answered `ok` (a warm cache), and every RunCommand
 * executed in-process: counted per task id, then a complete TaskFinished (the trivial task's
 * output) sent at once or after a random time (with a TaskStarted before it, as the real agent
 * sends one, when the task runs longer than the agent's hold), and the ResultAck recorded. The scheduler cannot tell
 * them from real agents; what is left out is the node's own work (file checks, spool, spawn),
 * so a run measures orchestration alone. A full agent per node (a grpc-js channel, cache, spool
 * and task runner each) does not fit 100,000 times on one machine beside the services.
 *
 * Counting executions is the point. By default a RunCommand is never deduplicated here, so a
 * scheduler that sends a run twice to a node, or never, shows in `counts`. With `dedupe` the
 * agents follow the real agent's rule instead (a task id runs at most once per node; a repeated
 * command re-sends the result, or is ignored while the task runs), which is what a scheduler
 * that takes over a run relies on; repeated commands are then counted apart.
 *
 * Each agent knows every scheduler address it was given, in its own shuffled order, and
 * behaves as the real agent's connection does: a stream that ends, or an attempt that fails,
 * moves it to its next address after the real agent's backoff (agent/connection.ts), at least
 * the retry delay an UNAVAILABLE carried in its google.rpc.RetryInfo; the results not
 * acknowledged yet go again in the next Hello. Streams of one worker to one address share
 * connections, `agentsPerConnection` streams each. Every ended stream is counted, with why the
 * last one ended, and a watched address's lost agents are timed until their next Welcome.
 *
 * Requests:
 * - `start` { addresses, identities, agentsPerConnection, localAddressBase, dedupe?, taskMs? }:
 *   connects them, at most CONNECT_BATCH connections' worth at a time, and resolves once every
 *   one has been welcomed; with `taskMs`, each task ends after a random time up to that;
 * - `counts` { taskId }: what this worker's agents did for that run (AgentCounts);
 * - `placement`: welcomed agents per scheduler address;
 * - `watch` { address }: from now on, agents whose welcomed stream to `address` ends are
 *   followed until they are welcomed again; resolves with how many hold one now;
 * - `rewelcomed` { since }: when each followed agent was welcomed again, in ms after `since`
 *   (Date.now() ms), how many are not yet, and how many still hold their stream (Rewelcomes);
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

/** What the agents of one worker did for one task id, and how their streams fared. */
export interface AgentCounts {
  /** Agents in this worker. */
  agents: number;
  /** Agents that executed the task exactly once. */
  once: number;
  /** Agents that never received its RunCommand. */
  never: number;
  /** Agents that executed it more than once. */
  repeated: number;
  /** Agents that received its RunCommand more than once (each executed it once with `dedupe`). */
  commandsRepeated: number;
  /** Agents whose TaskFinished was acknowledged. */
  acked: number;
  /** Streams that have ended since the agents connected (each was reconnected). */
  streamsEnded: number;
  /** Of those, the ones whose status carried a retry delay (honoured before the next attempt). */
  retryDelays: number;
  /** Agents without a welcomed stream right now. */
  disconnected: number;
  /** Why the last ended stream ended, when one did. */
  endedExample?: string;
  /** Why streams ended, digits left out, with how often. */
  endReasons: Record<string, number>;
}

/** The watched agents' way back (the `rewelcomed` request). */
export interface Rewelcomes {
  /** Per agent welcomed again: ms from `since` to its Welcome. */
  delaysMs: number[];
  /** Per agent welcomed again (in the order of delaysMs): ms it spent waiting before its attempts (backoff, retry delays), and its attempts. */
  waitedMs: number[];
  attempts: number[];
  /** Per agent whose stream ended (welcomed again or not): ms from `since` to when it saw its stream end. */
  noticedMs: number[];
  /** Agents whose stream ended, not welcomed again yet. */
  pending: number;
  /** Agents still holding a welcomed stream to the watched address: not seen to end yet. */
  holding: number;
}

/** The trivial task's output, as the real agent would report it. */
const STDOUT = '{"ok": true, "bench": "trivial"}\n';
/** The trivial task's run time reported, in seconds. */
const RUNTIME_S = 0.002;

/** One simulated node. */
interface SimAgent {
  identity: string;
  /** The scheduler addresses in this agent's order, and which one it uses now. */
  addresses: string[];
  target: number;
  /** Its welcomed stream, while it has one, and when it was welcomed. */
  stream?: ClientHttp2Stream;
  /** The stream whose Welcome it awaits. */
  opening?: ClientHttp2Stream;
  welcomedAt: number;
  heartbeat?: NodeJS.Timeout;
  /** Its heartbeat interval (the Welcome's, or the last a Heartbeat answer gave), in s, and whether any message counts as one. */
  heartbeatS: number;
  busyCounts: boolean;
  /** When it last sent a message and last received one, in ms since the epoch (for skipping Heartbeats as the real agent does). */
  lastSentMs: number;
  lastHeardMs: number;
  /** RunCommands received, and executions, per task id. */
  commands: Map<string, number>;
  executions: Map<string, number>;
  /** Results of the tasks that finished, by task id, for a repeated command (with `dedupe`). */
  results: Map<string, NodeResult>;
  /** Results sent and not acknowledged yet, by task id; the next Hello re-sends them. */
  unacked: Map<string, NodeResult>;
  /** Task ids whose TaskFinished the scheduler acknowledged. */
  acked: Set<string>;
  /** Why its last stream ended, and its reconnect attempts since the last Welcome. */
  lastEnd?: string;
  attempts: number;
  /** The retry delay the scheduler gave when it ended the last stream; used once. */
  serverDelayMs?: number;
  /** Whether that was a Hello refused by admission control: the next attempt goes to the same scheduler; used once. */
  sameScheduler?: boolean;
  /** When its welcomed stream to the watched address ended, and when it was welcomed again. */
  lostAt?: number;
  backAt?: number;
  /** Since lostAt: the time spent waiting before reconnect attempts, and the attempts. */
  lostWaitMs: number;
  lostAttempts: number;
  /** Called at the agent's first Welcome. */
  onFirstWelcome?: () => void;
}

const agents: SimAgent[] = [];
/**
 * What the agents did, counted as it happens, so that the requests the benchmarks poll while a
 * run goes on (`counts`, `placement`, `rewelcomed`) answer without visiting every agent: a visit
 * of every agent per poll, a few times a second, took a good share of a worker's CPU, which the
 * benchmark then measured as the simulated fleet being slow.
 */
interface TaskTally {
  once: number;
  repeated: number;
  commandsRepeated: number;
  acked: number;
}
const tallies = new Map<string, TaskTally>();
const noTally = (): TaskTally => ({ once: 0, repeated: 0, commandsRepeated: 0, acked: 0 });
function tally(taskId: string): TaskTally {
  let t = tallies.get(taskId);
  if (!t) tallies.set(taskId, (t = noTally()));
  return t;
}
/** Streams ended since the agents connected, those with a retry delay, and why the last one ended. */
let streamsEnded = 0;
let retryDelays = 0;
let endedExample: string | undefined;
/** Agents holding a welcomed stream, per scheduler address. */
const held = new Map<string, number>();
/** Agents whose welcomed stream to the watched address ended since the `watch` request. */
let followed: SimAgent[] = [];
/** Why streams ended (digits replaced by #, so that one reason is one entry), with how often. */
const endReasons = new Map<string, number>();
/** Open connections, with the number of streams each carries; one left without streams is closed. */
const sessions = new Map<ClientHttp2Session, number>();
/** Why a connection ended, when it did before its streams. */
const sessionEnds = new WeakMap<ClientHttp2Session, string>();
/** Per scheduler address, the connection new streams go on and how many it was given. */
const pooled = new Map<string, { session: ClientHttp2Session; streams: number }>();
let perConnection = 1;
let localAddressBase = '127.1.0';
let connectionsOpened = 0;
let dedupe = false;
let taskMs = 0;
let watched: string | undefined;
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

/**
 * Sends on the agent's welcomed stream, or on the one whose Welcome it awaits (after its Hello,
 * as the real agent does); dropped while it has neither (results go out again in the next Hello).
 */
function send(agent: SimAgent, message: ConnectRequest['message']): void {
  const stream = agent.stream ?? agent.opening;
  if (!stream) return;
  write(stream, message);
  agent.lastSentMs = Date.now();
}

/** Heartbeats every `intervalS` from now on, as the real agent sends them (agent/connection.ts heartbeatLoop). */
function heartbeat(agent: SimAgent, intervalS: number): void {
  clearTimeout(agent.heartbeat);
  agent.heartbeatS = intervalS;
  heartbeatLoop(
    intervalS * 1000,
    agent.busyCounts,
    () => Math.min(agent.lastSentMs, agent.lastHeardMs),
    () => send(agent, { $case: 'heartbeat', value: { sendTime: new Date(), runningTasks: 0, intervalS: 0 } }),
    (timer) => (agent.heartbeat = timer),
  );
}

/**
 * Executes a RunCommand in-process: counted, then finished at once or after up to `taskMs`, with
 * a TaskStarted when it runs longer than the real agent holds one (agent/start-hold.ts). With `dedupe`, a task id that ran already is not run again: its result is sent
 * again when it finished, and the command ignored while it runs, as the real agent does.
 */
function run(agent: SimAgent, command: RunCommand): void {
  const commands = (agent.commands.get(command.taskId) ?? 0) + 1;
  agent.commands.set(command.taskId, commands);
  if (commands === 2) tally(command.taskId).commandsRepeated++;
  if (dedupe && agent.executions.has(command.taskId)) {
    const result = agent.results.get(command.taskId);
    if (result) send(agent, { $case: 'taskFinished', value: { result } });
    return;
  }
  const executions = (agent.executions.get(command.taskId) ?? 0) + 1;
  agent.executions.set(command.taskId, executions);
  const t = tally(command.taskId);
  if (executions === 1) t.once++;
  else if (executions === 2) {
    t.once--;
    t.repeated++;
  }
  const startTime = new Date();
  const runMs = taskMs > 0 ? Math.random() * taskMs : 0;
  // A TaskStarted only for a task still running once the real agent's hold has passed.
  if (runMs > START_HOLD_MS) setTimeout(() => stopping || send(agent, { $case: 'taskStarted', value: { taskId: command.taskId, startTime } }), START_HOLD_MS);
  if (runMs > 0) setTimeout(() => finish(agent, command, startTime), runMs);
  else finish(agent, command, startTime);
}

/** Sends the trivial task's result (kept until acknowledged, for the next Hello). */
function finish(agent: SimAgent, command: RunCommand, startTime: Date): void {
  if (stopping) return;
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
  if (dedupe) agent.results.set(command.taskId, result);
  send(agent, { $case: 'taskFinished', value: { result } });
}

/**
 * Reconnects an agent whose stream ended or whose attempt failed, as the real agent's
 * connection does: to its next address (the same one after a Hello refused by admission
 * control), after the backoff (which grows only per round over every address) or the retry
 * delay the scheduler gave.
 */
function reconnect(agent: SimAgent): void {
  if (stopping) return;
  if (agent.addresses.length > 1 && !agent.sameScheduler) agent.target = (agent.target + 1) % agent.addresses.length;
  agent.sameScheduler = false;
  const delayMs = backoffDelayMs(Math.floor(agent.attempts++ / agent.addresses.length), Math.random, agent.serverDelayMs);
  agent.serverDelayMs = undefined;
  if (agent.lostAt !== undefined && agent.backAt === undefined) {
    agent.lostWaitMs += delayMs;
    agent.lostAttempts++;
  }
  setTimeout(() => {
    if (!stopping) openStream(agent, sessionTo(agent.addresses[agent.target]));
  }, delayMs);
}

/** The details of an UNAVAILABLE ending a stream (its reason, its google.rpc.RetryInfo); undefined for any other status. */
function refusalOf(headers: IncomingHttpHeaders): ErrorReport | undefined {
  const code = Number(headers['grpc-status']) as status;
  const details = headers['grpc-status-details-bin'];
  if (code !== status.UNAVAILABLE || typeof details !== 'string') return undefined;
  const metadata = new Metadata();
  metadata.set('grpc-status-details-bin', Buffer.from(details, 'base64'));
  const err: ServiceError = Object.assign(new Error(String(headers['grpc-message'] ?? '')), { code, details: '', metadata });
  return readServiceError(err);
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
  const address = agent.addresses[agent.target];
  const end = (why: string, refusal?: ErrorReport) => {
    const retryDelayMs = refusal?.retryDelayMs;
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    const left = (sessions.get(session) ?? 1) - 1;
    if (left > 0) sessions.set(session, left);
    else {
      sessions.delete(session);
      session.close();
    }
    if (agent.opening === stream) agent.opening = undefined;
    if (agent.stream === stream) {
      agent.stream = undefined;
      held.set(address, (held.get(address) ?? 1) - 1);
      clearTimeout(agent.heartbeat);
      if (Date.now() - agent.welcomedAt >= STABLE_SESSION_MS) agent.attempts = 0;
      if (address === watched) {
        if (agent.lostAt === undefined) followed.push(agent);
        agent.lostAt = Date.now();
        agent.backAt = undefined;
        agent.lostWaitMs = agent.lostAttempts = 0;
      }
    }
    if (stopping) return;
    streamsEnded++;
    agent.lastEnd = why;
    endedExample = `${agent.identity}: ${why}`;
    const reason = why.replace(/\d+/g, '#').slice(0, 160);
    endReasons.set(reason, (endReasons.get(reason) ?? 0) + 1);
    agent.serverDelayMs = retryDelayMs;
    agent.sameScheduler = refusal?.reason === TOO_MANY_HELLOS && retryDelayMs !== undefined;
    if (retryDelayMs !== undefined) retryDelays++;
    reconnect(agent);
  };
  const timer = setTimeout(() => {
    end(`no Welcome within ${WELCOME_DEADLINE_MS} ms`);
    stream.close(constants.NGHTTP2_CANCEL);
  }, WELCOME_DEADLINE_MS);
  // A status comes in trailers, or alone in the response headers (a Hello refused at once).
  const ending = (headers: IncomingHttpHeaders) => {
    if (headers['grpc-status'] === undefined) return;
    end(`stream ended: grpc-status ${String(headers['grpc-status'])} ${decodeURIComponent(String(headers['grpc-message'] ?? ''))}`, refusalOf(headers));
  };
  stream.on('response', ending);
  stream.on('trailers', ending);
  stream.on('error', (err: Error) => end(`stream error: ${err.message}`));
  stream.on('close', () => end(`stream closed (HTTP/2 code ${stream.rstCode ?? 'none'}${sessionEnds.get(session) ?? ''})`));
  readMessages(stream, (m) => {
    agent.lastHeardMs = Date.now();
    switch (m.message?.$case) {
      case 'welcome':
        clearTimeout(timer);
        agent.stream = stream;
        held.set(address, (held.get(address) ?? 0) + 1);
        agent.opening = undefined;
        agent.welcomedAt = Date.now();
        if (agent.lostAt !== undefined && agent.backAt === undefined) agent.backAt = agent.welcomedAt;
        agent.busyCounts = m.message.value.anyMessageIsHeartbeat;
        heartbeat(agent, m.message.value.heartbeatIntervalS);
        agent.onFirstWelcome?.();
        agent.onFirstWelcome = undefined;
        return;
      case 'download':
        write(stream, { $case: 'downloadResult', value: { requestId: m.message.value.requestId, ok: true, downloaded: 0, error: '' } });
        agent.lastSentMs = Date.now();
        return;
      case 'run':
        run(agent, m.message.value);
        return;
      case 'resultAck':
        if (!agent.acked.has(m.message.value.taskId)) tally(m.message.value.taskId).acked++;
        agent.acked.add(m.message.value.taskId);
        agent.unacked.delete(m.message.value.taskId);
        return;
      case 'heartbeat': {
        // The interval the scheduler gives from now on, followed as the real agent does.
        const intervalS = followedHeartbeatInterval(m.message.value.intervalS, agent.heartbeatS);
        if (agent.stream === stream && intervalS !== undefined) heartbeat(agent, intervalS);
        return;
      }
      default:
      // Cancels need nothing from a node whose tasks end at once.
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
      followsHeartbeatInterval: true,
    },
  });
  agent.opening = stream;
}

/**
 * The connection a new stream to `address` goes on: the current one while it has carried fewer
 * than `perConnection` streams and is open, else a new one.
 */
function sessionTo(address: string): ClientHttp2Session {
  const current = pooled.get(address);
  if (current && current.streams < perConnection && !current.session.closed && !current.session.destroyed) {
    current.streams++;
    return current.session;
  }
  const localAddress = `${localAddressBase}.${1 + Math.floor(connectionsOpened++ / CONNECTIONS_PER_LOCAL_ADDRESS)}`;
  const session = openSession(address, localAddress);
  pooled.set(address, { session, streams: 1 });
  return session;
}

/** Opens one HTTP/2 connection (its own TCP connection) to the scheduler at `address` from `localAddress`. */
function openSession(address: string, localAddress: string): ClientHttp2Session {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon);
  const port = Number(address.slice(colon + 1));
  const session = connect(`http://${address}`, { createConnection: () => netConnect({ host, port, localAddress }) });
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
    const timer = setTimeout(
      () => reject(new Error(`${agent.identity}: not welcomed within ${WELCOME_DEADLINE_MS} ms (last attempt: ${agent.lastEnd ?? 'no answer'})`)),
      WELCOME_DEADLINE_MS,
    );
    agent.onFirstWelcome = () => {
      clearTimeout(timer);
      resolve();
    };
  });
}

async function start(msg: Record<string, unknown>): Promise<number> {
  const addresses = msg.addresses as string[];
  const identities = msg.identities as string[];
  perConnection = Number(msg.agentsPerConnection);
  localAddressBase = String(msg.localAddressBase);
  dedupe = msg.dedupe === true;
  taskMs = Number(msg.taskMs ?? 0);
  const fresh = identities.map((identity): SimAgent => ({
    identity,
    addresses: shuffled(addresses),
    target: 0,
    welcomedAt: 0,
    lastSentMs: 0,
    lastHeardMs: 0,
    commands: new Map(),
    executions: new Map(),
    results: new Map(),
    unacked: new Map(),
    acked: new Set(),
    heartbeatS: 0,
    busyCounts: false,
    attempts: 0,
    lostWaitMs: 0,
    lostAttempts: 0,
  }));
  agents.push(...fresh);
  // Grouped by first address, so that the agents sharing a connection fill it.
  fresh.sort((a, b) => a.addresses[0].localeCompare(b.addresses[0]));
  const step = CONNECT_BATCH * perConnection;
  for (let i = 0; i < fresh.length; i += step) {
    const batch = fresh.slice(i, i + step);
    const welcomed = batch.map(firstWelcome);
    for (const agent of batch) openStream(agent, sessionTo(agent.addresses[0]));
    await Promise.all(welcomed);
  }
  return agents.length;
}

function counts(msg: Record<string, unknown>): Promise<AgentCounts> {
  const t = tallies.get(String(msg.taskId)) ?? noTally();
  let connected = 0;
  for (const n of held.values()) connected += n;
  return Promise.resolve({
    agents: agents.length,
    once: t.once,
    never: agents.length - t.once - t.repeated,
    repeated: t.repeated,
    commandsRepeated: t.commandsRepeated,
    acked: t.acked,
    streamsEnded,
    retryDelays,
    disconnected: agents.length - connected,
    endedExample,
    endReasons: Object.fromEntries(endReasons),
  });
}

function placement(): Promise<Record<string, number>> {
  return Promise.resolve(Object.fromEntries([...held].filter(([, n]) => n > 0)));
}

function watch(msg: Record<string, unknown>): Promise<number> {
  watched = String(msg.address);
  for (const agent of followed) agent.lostAt = agent.backAt = undefined;
  followed = [];
  return Promise.resolve(held.get(watched) ?? 0);
}

function rewelcomed(msg: Record<string, unknown>): Promise<Rewelcomes> {
  const since = Number(msg.since);
  const r: Rewelcomes = { delaysMs: [], waitedMs: [], attempts: [], noticedMs: [], pending: 0, holding: watched === undefined ? 0 : (held.get(watched) ?? 0) };
  for (const agent of followed) {
    if (agent.lostAt === undefined) continue;
    r.noticedMs.push(agent.lostAt - since);
    if (agent.backAt === undefined) r.pending++;
    else {
      r.delaysMs.push(agent.backAt - since);
      r.waitedMs.push(agent.lostWaitMs);
      r.attempts.push(agent.lostAttempts);
    }
  }
  return Promise.resolve(r);
}

serveWorker({ start, counts, placement, watch, rewelcomed }, async () => {
  stopping = true;
  for (const agent of agents) clearTimeout(agent.heartbeat);
  await Promise.all([...sessions.keys()].map((s) => new Promise<void>((resolve) => (s.closed ? resolve() : s.close(() => resolve())))));
});
