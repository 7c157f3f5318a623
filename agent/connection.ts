import { status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { AgentGatewayServiceClient, type ConnectRequest, type ConnectResponse, type Hello, type Welcome } from '../gen/baton/v1/agent_gateway_service';
import { readServiceError, TOO_MANY_HELLOS } from '../lib/errors';
import { makeClient } from '../lib/grpc-client';
import type { Logger } from '../lib/logger';
import type { TlsFiles } from '../lib/tls';

/**
 * Keeps the agent's one Connect stream to the scheduler up (docs/agent-protocol.md §1–3): open
 * the stream, send the Hello first, wait for the Welcome, heartbeat every interval, and after
 * the stream ends or fails reconnect with a jittered exponential backoff. Commands are handed
 * to the owner; this class knows the stream, not what the commands mean.
 */

/** First reconnect delay in ms; doubles per failed attempt. */
export const INITIAL_BACKOFF_MS = 200;
/** Longest reconnect delay in ms. */
export const MAX_BACKOFF_MS = 5_000;
/** The longest heartbeat interval a Heartbeat answer may give, in s; a longer one is ignored. */
const MAX_HEARTBEAT_INTERVAL_S = 86_400;

/**
 * The interval to heartbeat at from a scheduler's Heartbeat answer giving `givenS`, for an agent
 * heartbeating every `currentS`; undefined when it changes nothing: 0 (unchanged), the current
 * interval, or one over MAX_HEARTBEAT_INTERVAL_S.
 */
export function followedHeartbeatInterval(givenS: number, currentS: number): number | undefined {
  return givenS > 0 && givenS <= MAX_HEARTBEAT_INTERVAL_S && givenS !== currentS ? givenS : undefined;
}
/**
 * A session that stayed connected this long (ms) resets the backoff. Resetting on every Welcome
 * would make two agents with one identity (each replaces the other, docs/agent-protocol.md §1)
 * reconnect five times a second forever; this way they settle at MAX_BACKOFF_MS.
 */
export const STABLE_SESSION_MS = 10_000;
/** How long to wait for the Welcome after sending the Hello, in ms, before trying again. */
export const WELCOME_TIMEOUT_MS = 30_000;
/** How long `stop` waits for the scheduler to end the stream after the agent ended its side, in ms. */
export const STOP_GRACE_MS = 2_000;

/** A message the agent sends (the `message` of a ConnectRequest). */
export type AgentMessage = NonNullable<ConnectRequest['message']>;
/** A message the scheduler sends (the `message` of a ConnectResponse). */
export type SchedulerMessage = NonNullable<ConnectResponse['message']>;

/**
 * States of the connection:
 * - IDLE: constructed, `start` not called yet.
 * - CONNECTING: building the Hello, or stream open and Hello sent, waiting for the Welcome
 *   (from IDLE on start, from BACKOFF when its timer fires).
 * - CONNECTED: the Welcome arrived; heartbeats run (from CONNECTING).
 * - BACKOFF: the stream ended or failed; waiting to reconnect (from CONNECTING or CONNECTED).
 * - STOPPED: `stop` was called; final (from any state).
 */
export type ConnectionState = 'IDLE' | 'CONNECTING' | 'CONNECTED' | 'BACKOFF' | 'STOPPED';

/** One Connect stream. Messages sent on a session that ended are dropped. */
export class Session {
  /** True once the stream ended, failed or was cancelled. */
  ended = false;
  /** When the Welcome arrived, in ms since the epoch; undefined before. */
  welcomedAt?: number;
  /** Called once when the stream ends (used by `stop`). */
  onEnded?: () => void;
  /** When a message was last written on this stream, in ms since the epoch. */
  lastSentMs = 0;

  constructor(readonly call: ClientDuplexStream<ConnectRequest, ConnectResponse>) {}

  /** Writes a message on this stream; false when the stream has ended. */
  send(message: AgentMessage, traceContext: Record<string, string> = {}): boolean {
    if (this.ended || !this.call.writable) return false;
    this.call.write({ traceContext, message });
    this.lastSentMs = Date.now();
    return true;
  }
}

/**
 * Sends a Heartbeat every `intervalMs`. When the scheduler counts every message as one
 * (`busyCounts`, its Welcome's any_message_is_heartbeat), a Heartbeat is skipped while the
 * stream is busy both ways, a message sent and one received within the interval: each side
 * already knows the other is alive, and a fleet in a run would otherwise send one more message
 * per node for nothing. The next Heartbeat is then due an interval after the older of the two
 * (`quietSinceMs`), so neither side goes longer than an interval without hearing the other.
 * Each timer armed is handed to `onTimer`, for the caller to clear.
 */
export function heartbeatLoop(
  intervalMs: number,
  busyCounts: boolean,
  quietSinceMs: () => number,
  send: () => void,
  onTimer: (timer: NodeJS.Timeout) => void,
): void {
  const beat = () => {
    const now = Date.now();
    const quietSince = quietSinceMs();
    if (busyCounts && now - quietSince < intervalMs) {
      onTimer(setTimeout(beat, quietSince + intervalMs - now));
      return;
    }
    send();
    onTimer(setTimeout(beat, intervalMs));
  };
  onTimer(setTimeout(beat, intervalMs));
}

/** Options of AgentConnection. */
export interface AgentConnectionOptions {
  /**
   * The schedulers: host:port addresses, or `dns:///name:port` targets (every address the name
   * resolves to, tried in shuffled order by gRPC). Tried in a shuffled order, moving to the next
   * whenever a session ends or an attempt fails.
   */
  addresses: string[];
  tls: TlsFiles;
  identity: string;
  log: Logger;
  /** Heartbeat interval in seconds when the Welcome gives 0. */
  heartbeatIntervalS: number;
  /**
   * Seconds without any message from the scheduler (it answers every Heartbeat) after which
   * the session is given up and a new one opened; 0 means 3 heartbeat intervals.
   */
  schedulerTimeoutS?: number;
  /** Builds the Hello of a new session (called once per connection attempt); the connection says it follows interval changes. */
  hello(): Promise<Omit<Hello, 'followsHeartbeatInterval'>>;
  /** Number of running tasks, reported in heartbeats. */
  runningTasks(): number;
  /** The Welcome of a session arrived. */
  onWelcome(welcome: Welcome, session: Session): void;
  /** A command arrived (download, run, cancel, result ack). */
  onCommand(message: SchedulerMessage, session: Session, traceContext: Record<string, string>): void;
  /** Where the "connected" line goes; default stdout. */
  announce?: (line: string) => void;
}

/**
 * The jittered reconnect delay after `attempt` failed attempts (0-based), in ms. With a retry
 * delay the scheduler gave (`google.rpc.RetryInfo` of its UNAVAILABLE: admission control, load
 * shedding), at least that long, plus up to 20 % so the refused agents do not return together.
 */
export function backoffDelayMs(attempt: number, random: () => number = Math.random, serverDelayMs?: number): number {
  if (serverDelayMs !== undefined) return Math.round(serverDelayMs * (1 + 0.2 * random()));
  const base = Math.min(MAX_BACKOFF_MS, INITIAL_BACKOFF_MS * 2 ** Math.min(attempt, 16));
  // ±20 % so that agents cut off together (scheduler restart) do not come back in lockstep.
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** The addresses in a random order (Fisher-Yates), so that a fleet spreads over the schedulers it was given. */
export function shuffled<T>(items: readonly T[], random: () => number = Math.random): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Channel options of a `dns:///` target: gRPC connects to its addresses in a shuffled order, not always the first. */
const DNS_TARGET_OPTIONS = { 'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ pick_first: { shuffleAddressList: true } }] }) };

function clientFor(address: string, tls: TlsFiles): AgentGatewayServiceClient {
  return makeClient(AgentGatewayServiceClient, address, tls, address.startsWith('dns:') ? DNS_TARGET_OPTIONS : {});
}

/** The agent's connection to the scheduler. */
export class AgentConnection {
  private current: ConnectionState = 'IDLE';
  private client: AgentGatewayServiceClient;
  /** The schedulers in this agent's own order, and the one the current client talks to. */
  private readonly addresses: string[];
  private target = 0;
  // Set when the scheduler went silent: the next session gets a new channel (a new TCP connection).
  private renewChannel = false;
  // The retry delay the scheduler asked for when it ended the last session; used once.
  private serverDelayMs: number | undefined;
  // Set when the scheduler refused the Hello for now (admission control): the next attempt goes
  // to the same scheduler, at the slot it gave; used once.
  private sameScheduler = false;
  private session?: Session;
  private attempt = 0;
  private reconnectTimer?: NodeJS.Timeout;
  private welcomeTimer?: NodeJS.Timeout;
  private heartbeatTimer?: NodeJS.Timeout;
  private silenceTimer?: NodeJS.Timeout;
  private lastHeardMs = 0;
  /** The session's heartbeat interval (the Welcome's, or the last a Heartbeat answer gave), in s, and whether any message counts as one. */
  private heartbeatS = 0;
  private busyCounts = false;
  // Messages sent while the next session's Hello is being built; written right after it.
  private queued: AgentMessage[] = [];

  constructor(private readonly options: AgentConnectionOptions) {
    if (options.addresses.length === 0) throw new Error('AgentConnection needs at least one scheduler address');
    this.addresses = shuffled(options.addresses);
    this.client = clientFor(this.address, options.tls);
  }

  /** The scheduler this agent talks to now (or tries next). */
  get address(): string {
    return this.addresses[this.target];
  }

  /** Where the connection is (see ConnectionState). */
  get state(): ConnectionState {
    return this.current;
  }

  /** Opens the first session; later ones follow on their own until `stop`. */
  start(): void {
    if (this.current !== 'IDLE') return;
    this.open();
  }

  /**
   * Sends a message on the current session. While a session is being opened the message is
   * written right after its Hello; while backing off it is dropped (results are in the spool
   * and go out with the next Hello). Returns false when dropped.
   */
  send(message: AgentMessage, traceContext: Record<string, string> = {}): boolean {
    if (this.session) return this.session.send(message, traceContext);
    if (this.current === 'CONNECTING') {
      this.queued.push(message);
      return true;
    }
    return false;
  }

  /**
   * Ends the stream (half-close, so the scheduler sees a clean end and marks the node offline)
   * and stops reconnecting. Running tasks are not touched.
   */
  async stop(): Promise<void> {
    if (this.current === 'STOPPED') return;
    this.current = 'STOPPED';
    clearTimeout(this.reconnectTimer);
    this.clearSessionTimers();
    this.queued = [];
    const session = this.session;
    if (session && !session.ended) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          session.call.cancel();
          resolve();
        }, STOP_GRACE_MS);
        session.onEnded = () => {
          clearTimeout(timer);
          resolve();
        };
        session.call.end();
      });
    }
    this.client.close();
  }

  private open(): void {
    this.current = 'CONNECTING';
    this.options.hello().then(
      (hello) => this.openStream({ ...hello, followsHeartbeatInterval: true }),
      (err: unknown) => {
        this.options.log.error({ err: (err as Error).message }, 'cannot build the Hello');
        this.backoff();
      },
    );
  }

  private openStream(hello: Hello): void {
    if (this.current !== 'CONNECTING') return; // stopped meanwhile
    if (this.renewChannel) {
      this.renewChannel = false;
      this.client.close();
      this.client = clientFor(this.address, this.options.tls);
    }
    this.lastHeardMs = Date.now();
    const call = this.client.connect();
    const session = new Session(call);
    this.session = session;
    call.on('data', (res: ConnectResponse) => this.receive(session, res));
    call.on('error', (err: ServiceError) => this.ended(session, err));
    call.on('end', () => this.ended(session));
    call.on('close', () => this.ended(session));
    session.send({ $case: 'hello', value: hello });
    for (const m of this.queued.splice(0)) session.send(m);
    this.welcomeTimer = setTimeout(() => {
      this.options.log.warn({ timeoutMs: WELCOME_TIMEOUT_MS }, 'no Welcome from the scheduler; reconnecting');
      call.cancel();
    }, WELCOME_TIMEOUT_MS);
  }

  private receive(session: Session, res: ConnectResponse): void {
    if (session !== this.session || session.ended || !res.message) return;
    this.lastHeardMs = Date.now();
    const message = res.message;
    if (message.$case === 'heartbeat') {
      // Liveness, and from a scheduler that sets one, the interval to heartbeat at from now on.
      const intervalS = followedHeartbeatInterval(message.value.intervalS, this.heartbeatS);
      if (session.welcomedAt !== undefined && intervalS !== undefined) {
        this.options.log.info({ heartbeatIntervalS: intervalS }, 'heartbeat interval changed');
        this.pace(session, intervalS);
      }
      return;
    }
    if (message.$case !== 'welcome') {
      this.options.onCommand(message, session, res.traceContext);
      return;
    }
    if (session.welcomedAt !== undefined) return; // one Welcome per session
    session.welcomedAt = Date.now();
    this.current = 'CONNECTED';
    clearTimeout(this.welcomeTimer);
    const intervalS = message.value.heartbeatIntervalS || this.options.heartbeatIntervalS;
    this.busyCounts = message.value.anyMessageIsHeartbeat;
    this.pace(session, intervalS);
    // Heartbeats both ways (docs/agent-protocol.md §2): gRPC keepalive notices a dead TCP
    // connection; this notices a scheduler that is connected but no longer answers.
    this.silenceTimer = setInterval(
      () => {
        const silenceMs = (this.options.schedulerTimeoutS || 3 * this.heartbeatS) * 1000;
        const silentMs = Date.now() - this.lastHeardMs;
        if (silentMs <= silenceMs) return;
        this.options.log.warn({ silentMs, timeoutMs: silenceMs }, 'no message from the scheduler in time; reconnecting');
        // The connection under the stream may be the dead part: open the next one on a new channel.
        this.renewChannel = true;
        session.call.cancel();
      },
      Math.min(1000, (this.options.schedulerTimeoutS || 3 * intervalS) * 1000),
    );
    this.options.log.info({ address: this.address, heartbeatIntervalS: intervalS }, 'connected');
    (this.options.announce ?? ((line: string) => process.stdout.write(line)))(`baton-agent ${this.options.identity} connected to ${this.address}\n`);
    this.options.onWelcome(message.value, session);
  }

  /**
   * Sends Heartbeats on `session` every `intervalS` from now on (heartbeatLoop), skipping them
   * while it is busy when the scheduler counts every message as one.
   */
  private pace(session: Session, intervalS: number): void {
    clearTimeout(this.heartbeatTimer);
    this.heartbeatS = intervalS;
    heartbeatLoop(
      intervalS * 1000,
      this.busyCounts,
      () => Math.min(session.lastSentMs, this.lastHeardMs),
      () => session.send({ $case: 'heartbeat', value: { sendTime: new Date(), runningTasks: this.options.runningTasks(), intervalS: 0 } }),
      (timer) => (this.heartbeatTimer = timer),
    );
  }

  /** The session's stream ended (any of end, error, close); schedules the next one. */
  private ended(session: Session, err?: ServiceError): void {
    if (session.ended) return;
    session.ended = true;
    session.onEnded?.();
    if (session !== this.session) return;
    this.session = undefined;
    this.clearSessionTimers();
    if (this.current === 'STOPPED') return;
    if (session.welcomedAt !== undefined && Date.now() - session.welcomedAt >= STABLE_SESSION_MS) this.attempt = 0;
    const why = err ? `${err.details || err.message} (code ${err.code})` : 'the scheduler ended the stream';
    const refusal = err && err.code === status.UNAVAILABLE ? readServiceError(err) : undefined;
    this.serverDelayMs = refusal?.retryDelayMs;
    this.sameScheduler = refusal?.reason === TOO_MANY_HELLOS && this.serverDelayMs !== undefined;
    this.options.log.warn({ address: this.address, reason: why, retryDelayMs: this.serverDelayMs }, 'disconnected');
    this.backoff();
  }

  private backoff(): void {
    if (this.current === 'STOPPED') return;
    this.current = 'BACKOFF';
    this.queued = [];
    // The next attempt goes to the next scheduler: a dead or refusing one is not tried again
    // before the others, and the pause grows only once every scheduler was tried. Except after
    // a Hello refused by admission control: that scheduler keeps a slot for the agent, and an
    // agent moving on at each refusal lands, with every other refused agent, on whichever
    // scheduler refuses least, which then holds several times its share of the fleet.
    const same = this.sameScheduler;
    this.sameScheduler = false;
    if (this.addresses.length > 1 && !same) {
      this.target = (this.target + 1) % this.addresses.length;
      this.renewChannel = true;
    }
    const delay = backoffDelayMs(Math.floor(this.attempt++ / this.addresses.length), Math.random, this.serverDelayMs);
    this.serverDelayMs = undefined;
    this.options.log.debug({ delayMs: delay }, 'reconnecting after a pause');
    this.reconnectTimer = setTimeout(() => this.open(), delay);
  }

  private clearSessionTimers(): void {
    clearTimeout(this.welcomeTimer);
    clearTimeout(this.heartbeatTimer);
    clearInterval(this.silenceTimer);
    this.welcomeTimer = undefined;
    this.heartbeatTimer = undefined;
    this.silenceTimer = undefined;
  }
}
