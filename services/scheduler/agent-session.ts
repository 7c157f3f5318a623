import { randomUUID } from 'node:crypto';
import { status, type ServerDuplexStream } from '@grpc/grpc-js';
import {
  Hello,
  type ConnectRequest,
  type ConnectResponse,
  type DownloadCommand,
  type DownloadResult,
  type FactsUpdate,
  type TaskFinished,
} from '../../gen/baton/v1/agent_gateway_service';
import { BatonError, InvalidArgumentError, PermissionDeniedError, UnavailableError, toServiceError } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import { metrics } from '../../lib/metrics';
import { extractTraceContext, inSpan } from '../../lib/tracing';
import type { AgentRegistry } from './agent-registry';
import { STALE_AFTER_HEARTBEATS, type NodeIndex } from './node-index';
import type { ResultRecorder } from './result-recorder';
import { EncodedResponse, heartbeatAnswer } from './encoded-response';
import type { HeartbeatWriter } from './heartbeat-writer';
import { heartbeatIntervalFor, type HeartbeatIntervalOptions, type HeldIntervals } from './heartbeat-interval';
import type { HelloAdmission } from './hello-admission';
import { AgentStreamLimits, nodeDescriptionProblem, type AgentStreamLimitsOptions } from './agent-stream-limits';
import { IDENTITY_PATTERN } from '../../lib/names';
import { peerOf } from '../../lib/peer-identity';
import { quote } from '../../lib/quote';

/** W3C trace context carried by every message; empty until tracing lands. */
export type TraceContext = Record<string, string>;

/** A command the scheduler sends to an agent. */
export type AgentCommand = Extract<NonNullable<ConnectResponse['message']>, { $case: 'download' | 'run' | 'cancel' }>;

/** First delay before recording again a result the results service could not store, in ms; doubles per attempt. */
export const RESULT_RETRY_INITIAL_MS = 500;
/** Longest delay between attempts to store a result, in ms. */
export const RESULT_RETRY_MAX_MS = 10_000;

/** What a session needs from the rest of the scheduler. */
export interface AgentSessionOptions {
  index: NodeIndex;
  /** Writes the heartbeats of every session together. */
  heartbeats: HeartbeatWriter;
  registry: AgentRegistry<AgentSession>;
  recorder: ResultRecorder;
  log: Logger;
  /** Seconds between heartbeats asked of the agent in the Welcome (the shortest, when `heartbeatIntervals` lets them grow). */
  heartbeatIntervalS: number;
  /** How the interval grows with the agents held here (heartbeat-interval.ts); default: always heartbeatIntervalS. */
  heartbeatIntervals?: Omit<HeartbeatIntervalOptions, 'baseS'>;
  /** Counts the interval of each Welcome while its session lasts (the longest is noted in Redis); default: not counted. */
  heldIntervals?: HeldIntervals;
  /** Address of the metadata service, given to the agent in the Welcome. */
  metadataAddress: string;
  /** Admission control of Hellos; default: every Hello admitted. */
  admission?: HelloAdmission;
  /** Message rate limit of each stream; default agent-stream-limits.ts defaults. */
  messageLimits?: AgentStreamLimitsOptions;
}

/**
 * Session states:
 * - AWAITING_HELLO: the stream is open and nothing was received yet;
 * - GREETING: a valid Hello arrived; the node is being written to the index;
 * - READY: the Welcome was sent; commands may be sent;
 * - CLOSED: the stream ended (agent left, replaced by a newer connection, silent for too long,
 *   protocol error, or the scheduler is draining).
 */
export type SessionState = 'AWAITING_HELLO' | 'GREETING' | 'READY' | 'CLOSED';

/**
 * One agent's Connect stream (docs/agent-protocol.md): validates the Hello, keeps the node's
 * index entry fresh, sends commands, routes DownloadResults to whoever waits for them, and has
 * TaskStarted/TaskFinished recorded by the results service, acknowledging each TaskFinished
 * only once it is stored.
 */
export class AgentSession {
  /** Unique id of this session; the index entry records which session wrote it. */
  readonly id = randomUUID();
  /** The node's identity, set once a valid Hello arrived. */
  identity = '';
  /** When the agent opened this stream, ms since the epoch (local clock). */
  readonly openedMs = Date.now();
  /** Resolves once the session is closed and the node's index entry updated. */
  readonly closed: Promise<void>;

  private state: SessionState = 'AWAITING_HELLO';
  /**
   * The Hello as the index holds it (facts updates applied; re-sent results left out), encoded:
   * read only to write the node again, and kept off the JavaScript heap, whose every live
   * object a full garbage collection visits.
   */
  private helloBytes: Uint8Array | undefined;
  private lastHeardMs = Date.now();
  /** When the node was last noted heard for its last-seen (a Heartbeat, or any message once an interval has passed), in ms since the epoch. */
  private lastNotedMs = 0;
  private readonly downloads = new Map<string, (result: DownloadResult | undefined) => void>();
  /** Hello, facts updates and rewrites of a lost entry, handled in order (fast Redis writes). */
  private control: Promise<void> = Promise.resolve();
  /** TaskStarted/TaskFinished, queued in order, apart from `control` so a slow results service never delays a facts update. */
  private reports: Promise<void> = Promise.resolve();
  private livenessTimer: NodeJS.Timeout | undefined;
  /** The heartbeat interval this agent was asked for (the configured one until the Welcome), in ms. */
  private intervalMs = 0;
  /** The interval the agent was told last (Welcome or Heartbeat answer), in s, while counted in `heldIntervals`; 0 before the Welcome and once closed. */
  private heldIntervalS = 0;
  /** True when the agent's Hello said it follows the interval a Heartbeat answer gives. */
  private followsInterval = false;
  /** Pending attempts to store results the results service did not take; cleared on close. */
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  /** The logger naming the node and this session, made on first use: most sessions never log at the levels a fleet runs with. */
  private sessionLog: Logger | undefined;
  private resolveClosed: () => void = () => undefined;
  private readonly limits: AgentStreamLimits;

  constructor(
    private readonly call: ServerDuplexStream<ConnectRequest, ConnectResponse>,
    private readonly options: AgentSessionOptions,
  ) {
    this.limits = new AgentStreamLimits(options.messageLimits);
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  /** The scheduler's logger until a valid Hello named the node, then one naming the node and this session. */
  private get log(): Logger {
    if (!this.identity) return this.options.log;
    return (this.sessionLog ??= this.options.log.child({ node: this.identity, session: this.id }));
  }

  /** Starts handling the stream. */
  start(): void {
    this.call.on('data', (req: ConnectRequest) => this.onMessage(req));
    // The agent half-closed, cancelled, or the connection died: the session is over either way.
    this.call.on('end', () => void this.close());
    this.call.on('cancelled', () => void this.close());
    this.call.on('error', () => void this.close());
    this.call.on('close', () => void this.close());
    this.watchLiveness(this.options.heartbeatIntervalS);
  }

  /** Checks every `intervalS` that the agent was heard within STALE_AFTER_HEARTBEATS of them. */
  private watchLiveness(intervalS: number): void {
    clearInterval(this.livenessTimer);
    this.intervalMs = intervalS * 1000;
    this.livenessTimer = setInterval(() => this.checkLiveness(this.intervalMs), this.intervalMs);
    this.livenessTimer.unref();
  }

  /** The interval this replica gives an agent now, for the agents it holds (heartbeat-interval.ts). */
  private intervalNow(): number {
    const { heartbeatIntervalS: baseS, heartbeatIntervals } = this.options;
    return heartbeatIntervals ? heartbeatIntervalFor(this.options.registry.size, { baseS, ...heartbeatIntervals }) : baseS;
  }

  /**
   * Moves the session to the interval the replica gives now, when it changed since the agent
   * was told one: counted in `heldIntervals` and watched at the new pace from this answer on,
   * which tells the agent. Returns the interval.
   */
  private retune(): number {
    const intervalS = this.intervalNow();
    if (intervalS === this.heldIntervalS) return intervalS;
    this.options.heldIntervals?.remove(this.heldIntervalS);
    this.options.heldIntervals?.add(intervalS);
    this.heldIntervalS = intervalS;
    this.watchLiveness(intervalS);
    return intervalS;
  }

  /** True once the Welcome was sent and until the stream ends. */
  get ready(): boolean {
    return this.state === 'READY';
  }

  /** Sends a command; false when the session is not ready (not greeted yet, or closed). */
  send(command: AgentCommand | EncodedResponse, traceContext: TraceContext = {}): boolean {
    const sent = this.state === 'READY' && this.write(command, traceContext);
    const message = command instanceof EncodedResponse ? command.message.message : command;
    if (sent && message?.$case === 'run') this.options.registry.runSent(this.identity, message.value.taskId);
    return sent;
  }

  /**
   * Sends a DownloadCommand and resolves with the agent's DownloadResult, or undefined when the
   * agent does not answer within `timeoutMs` or the session ends first.
   */
  download(command: DownloadCommand, timeoutMs: number, traceContext: TraceContext = {}, encoded?: EncodedResponse): Promise<DownloadResult | undefined> {
    return new Promise((resolve) => {
      const finish = (result: DownloadResult | undefined) => {
        clearTimeout(timer);
        this.downloads.delete(command.requestId);
        resolve(result);
      };
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      this.downloads.set(command.requestId, finish);
      if (!this.send(encoded ?? { $case: 'download', value: command }, traceContext)) finish(undefined);
    });
  }

  /**
   * Ends the session: the stream ends (with `error` as its status, OK without), pending
   * downloads resolve as unanswered, and the node is marked offline unless a newer session of
   * the same node has replaced this one. Its outstanding runs then show the node as
   * disconnected, unless the scheduler is `draining` (the agents move to another scheduler at
   * once; the node is not away).
   */
  close(error?: BatonError, options: { draining?: boolean } = {}): Promise<void> {
    if (this.state === 'CLOSED') return this.closed;
    this.state = 'CLOSED';
    clearInterval(this.livenessTimer);
    if (this.heldIntervalS > 0) this.options.heldIntervals?.remove(this.heldIntervalS);
    this.heldIntervalS = 0;
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
    for (const finish of [...this.downloads.values()]) finish(undefined);
    this.endStream(error);
    if (this.options.log.isLevelEnabled('info')) {
      if (error) this.log.info({ reason: error.message }, 'agent session closed');
      else this.log.info('agent session closed');
    }
    void this.markOffline(!options.draining).finally(this.resolveClosed);
    return this.closed;
  }

  private async markOffline(noteAway: boolean): Promise<void> {
    if (!this.identity || !this.options.registry.remove(this.identity, this)) return;
    if (noteAway) this.noteAway();
    try {
      await this.options.index.markOffline(this.identity, this.id);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not mark the node offline; it goes stale after 3 heartbeat intervals');
    }
  }

  /**
   * Shows the node as disconnected in every run outstanding on it, after the reports already
   * received from it. Skipped when a newer session of the node came first.
   */
  private noteAway(): void {
    const since = new Date();
    const { registry, recorder } = this.options;
    for (const run of registry.outstanding(this.identity)) {
      this.enqueueReport(() => {
        if (registry.get(this.identity) || !registry.outstanding(this.identity).includes(run)) return;
        run.away = true;
        // Queued, not awaited: it logs its own failure, and a later result of the node is sent
        // after it.
        void recorder.recordAway(this.identity, run, since);
      });
    }
  }

  /**
   * Clears the disconnected note of every run still outstanding on the node, now that it is
   * back. Each note is sent after the one that showed the node away (the batcher keeps a node's
   * results in order).
   */
  private async noteBack(): Promise<void> {
    const cleared: Array<Promise<void>> = [];
    for (const run of this.options.registry.outstanding(this.identity)) {
      if (!run.away) continue;
      run.away = false;
      cleared.push(this.options.recorder.recordBack(this.identity, run));
    }
    await Promise.all(cleared);
  }

  private endStream(error?: BatonError): void {
    if (this.call.cancelled || this.call.destroyed || this.call.writableEnded) return;
    if (error) this.call.emit('error', toServiceError(error, this.log));
    else this.call.end();
  }

  private write(message: NonNullable<ConnectResponse['message']> | EncodedResponse, traceContext: TraceContext = {}): boolean {
    if (this.call.cancelled || this.call.destroyed || this.call.writableEnded) return false;
    // An EncodedResponse goes out as it is: the service is registered with AgentGatewayServiceDefinition, whose serializer knows it.
    this.call.write(message instanceof EncodedResponse ? (message as unknown as ConnectResponse) : { traceContext, message });
    return true;
  }

  /**
   * Notes the node heard at `atMs`: written with every other agent's at the heartbeat writer's
   * next flush; the Hello's write counts as heard until then.
   */
  private noteHeard(atMs: number): void {
    this.lastNotedMs = atMs;
    this.options.heartbeats.heard(this.identity, this.id, this.rewriteMissing, atMs);
  }

  private checkLiveness(intervalMs: number): void {
    const silentMs = Date.now() - this.lastHeardMs;
    if (silentMs <= STALE_AFTER_HEARTBEATS * intervalMs) return;
    void this.close(
      new UnavailableError(`no message from the agent for ${Math.round(silentMs / 1000)} s (${STALE_AFTER_HEARTBEATS} heartbeat intervals); reconnect`),
    );
  }

  private onMessage(req: ConnectRequest): void {
    if (this.state === 'CLOSED') return;
    // Over the rate: end the stream; reports already queued are still recorded whole.
    if (!this.limits.admit()) {
      this.log.warn(
        { node: this.identity || undefined, messagesPerS: this.limits.messagesPerS, burst: this.limits.burst },
        'agent over its message rate; stream ended',
      );
      void this.close(this.limits.exceeded());
      return;
    }
    this.lastHeardMs = Date.now();
    const m = req.message;
    // Every message counts as a heartbeat (the Welcome says so), and an agent whose stream is
    // busy skips its Heartbeats: its last-seen is noted from whatever it sends once an interval
    // has passed since the last note, when a Heartbeat would have been due. So a note replaces
    // a skipped Heartbeat, and a busy node costs no more last-seen writes than an idle one.
    if (this.state === 'READY' && m?.$case !== 'heartbeat' && this.lastHeardMs - this.lastNotedMs >= this.intervalMs) this.noteHeard(this.lastHeardMs);
    if (this.state === 'AWAITING_HELLO') {
      if (m?.$case !== 'hello') {
        void this.close(new InvalidArgumentError(`the first message must be a Hello, got ${m ? m.$case : 'an empty message'}`));
        return;
      }
      this.onHello(m.value);
      return;
    }
    switch (m?.$case) {
      case 'hello':
        void this.close(new InvalidArgumentError('Hello may be sent only once per stream'));
        return;
      case 'heartbeat':
        metrics.heartbeats.inc();
        // Answered at once, so the agent notices a scheduler that stopped answering
        // (docs/agent-protocol.md §2).
        if (this.state === 'READY') {
          this.write(heartbeatAnswer(this.followsInterval ? this.retune() : 0));
          this.noteHeard(this.lastHeardMs);
        }
        return;
      case 'factsUpdate': {
        const update = m.value;
        const tooLarge = nodeDescriptionProblem('FactsUpdate', update.facts, update.classes);
        if (tooLarge) {
          void this.close(new InvalidArgumentError(tooLarge));
          return;
        }
        this.control = this.control.then(() => this.onFactsUpdate(update));
        return;
      }
      case 'downloadResult': {
        const finish = this.downloads.get(m.value.requestId);
        if (finish) finish(m.value);
        else this.log.debug({ requestId: m.value.requestId }, 'DownloadResult nobody waits for (late or unknown); ignored');
        return;
      }
      case 'taskStarted': {
        const started = m.value;
        this.options.registry.runStarted(this.identity, started.taskId, started.startTime ?? new Date());
        // Queued in order, not awaited: its TaskFinished may follow into the same batch. It logs
        // its own failure. Under the run's context the agent sent (its execution span), not the
        // stream's: the RUNNING write belongs to the run's trace.
        const parent = extractTraceContext(req.traceContext);
        const attributes = { 'baton.task_id': started.taskId, 'baton.node': this.identity };
        this.enqueueReport(() => void inSpan('baton.record_started', attributes, () => this.options.recorder.recordStarted(this.identity, started), parent));
        return;
      }
      case 'taskFinished': {
        const finished = m.value;
        // A child of the agent's execution span: the run's trace goes on to the results service.
        const parent = extractTraceContext(req.traceContext);
        const attributes = { 'baton.task_id': finished.result?.taskId ?? '', 'baton.node': this.identity, 'baton.exit_code': finished.result?.exitcode ?? -1 };
        this.enqueueReport(() => this.settle(inSpan('baton.record_result', attributes, () => this.recordFinished(finished), parent)));
        return;
      }
      default:
        this.log.debug('empty ConnectRequest ignored');
    }
  }

  private onHello(hello: Hello): void {
    const shown = quote(hello.identity);
    if (!IDENTITY_PATTERN.test(hello.identity)) {
      void this.close(new InvalidArgumentError(`Hello.identity ${shown} is not a valid node identity; expected ${IDENTITY_PATTERN.source}`));
      return;
    }
    const tooLarge = nodeDescriptionProblem('Hello', hello.facts, hello.classes, hello.agents);
    if (tooLarge) {
      void this.close(new InvalidArgumentError(tooLarge));
      return;
    }
    // An agent is the node its certificate names: checked before anything is
    // registered or indexed, so a stolen agent key cannot take over another node's name, work or
    // results. Every later message is attributed to this identity, never to a field it sends.
    // Without TLS (`insecure`, `baton dev`) there is no certificate and the Hello is believed.
    const peer = peerOf(this.call);
    if (peer && peer.name !== hello.identity) {
      this.log.warn({ certificate: peer.name, claimed: shown }, 'agent Hello claims another identity than its certificate; stream ended');
      void this.close(new PermissionDeniedError(`certificate is for ${quote(peer.name)}; Hello claims ${shown}`, 'IDENTITY_MISMATCH'));
      return;
    }
    const refused = this.options.admission?.enter();
    if (refused) {
      void this.close(refused);
      return;
    }
    this.state = 'GREETING';
    this.identity = hello.identity;
    this.helloBytes = Hello.encode({ ...hello, unacknowledgedResults: [] }).finish();
    const replaced = this.options.registry.register(hello.identity, this);
    if (replaced) {
      void replaced.close(new BatonError(status.ABORTED, 'SESSION_REPLACED', `a newer connection of node '${hello.identity}' replaced this one`));
    }
    const greeted = this.greet(hello);
    this.control = greeted;
    // Results re-sent in the Hello are recorded only after the Welcome (docs/agent-protocol.md §1),
    // and before any TaskStarted/TaskFinished that arrives later on this stream.
    this.reports = greeted.then(async () => {
      // Queued together (one batch per run), awaited before the away notes are cleared.
      await Promise.all(hello.unacknowledgedResults.map((finished) => this.recordFinished(finished)));
      // Runs still outstanding after the re-sent results go on on the node: no longer away.
      if (this.state !== 'CLOSED') await this.noteBack();
    });
  }

  private async greet(hello: Hello): Promise<void> {
    try {
      await this.options.index.upsert(hello, this.id);
    } catch (err) {
      this.options.admission?.leave(false);
      this.log.warn({ err: (err as Error).message }, 'could not write the node to the discovery index');
      // A retry delay, so that while Redis (or this replica's lease) is out the agents do not
      // reconnect in a tight loop.
      const delayMs = this.options.admission?.spreadDelayMs();
      await this.close(
        new UnavailableError(
          `the scheduler could not record the node in its discovery index; reconnect${delayMs === undefined ? ' later' : ` in ${delayMs} ms`}`,
          delayMs,
        ),
      );
      return;
    }
    this.options.admission?.leave();
    if (this.state === 'CLOSED') return;
    this.state = 'READY';
    this.lastNotedMs = Date.now();
    const intervalS = this.intervalNow();
    this.heldIntervalS = intervalS;
    this.options.heldIntervals?.add(intervalS);
    this.followsInterval = hello.followsHeartbeatInterval;
    this.watchLiveness(intervalS);
    this.write({
      $case: 'welcome',
      value: { heartbeatIntervalS: intervalS, metadataAddress: this.options.metadataAddress, anyMessageIsHeartbeat: true },
    });
    if (this.options.log.isLevelEnabled('info'))
      this.log.info({ version: hello.version, unacknowledged: hello.unacknowledgedResults.length }, 'agent connected');
  }

  /**
   * Writes the node again when a heartbeat found its entry gone (Redis restarted without
   * persistence, or was flushed), unless the session has ended or been replaced meanwhile.
   */
  private readonly rewriteMissing = (): void => {
    this.control = this.control.then(async () => {
      if (this.state !== 'READY' || !this.helloBytes || this.options.registry.get(this.identity) !== this) return;
      try {
        await this.options.index.upsert(Hello.decode(this.helloBytes), this.id);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'could not write the node to the discovery index again');
      }
    });
  };

  /** New facts and classes replace the Hello's, in the index now and in every later re-write. */
  private async onFactsUpdate(update: FactsUpdate): Promise<void> {
    if (this.state !== 'READY' || !this.helloBytes) return;
    const hello: Hello = { ...Hello.decode(this.helloBytes), facts: update.facts ?? {}, classes: update.classes };
    this.helloBytes = Hello.encode(hello).finish();
    try {
      await this.options.index.upsert(hello, this.id);
      this.log.info({ classes: update.classes.length }, 'node facts updated');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not update the node in the discovery index');
    }
  }

  /**
   * Runs `work` after the reports received before it. Work that only queues its result (in the
   * batcher, which keeps a node's results in order) returns at once, so the next report follows
   * it into the same batch.
   */
  private enqueueReport(work: () => Promise<void> | void): void {
    this.reports = this.reports.then(work).catch((err: unknown) => this.log.error({ err }, 'recording an agent report failed'));
  }

  /** Lets a recording go on in the background; an unexpected failure of it is logged. */
  private settle(recording: Promise<void>): void {
    recording.catch((err: unknown) => this.log.error({ err }, 'recording an agent report failed'));
  }

  private async recordFinished(finished: TaskFinished, attempt = 0): Promise<void> {
    // Recorded even when the stream has closed meanwhile: the results service is idempotent and
    // the agent re-sends what it did not see acknowledged.
    const ack = await this.options.recorder.recordFinished(this.identity, finished);
    const taskId = finished.result?.taskId ?? '';
    if (ack) {
      this.options.registry.runFinished(this.identity, taskId);
      if (this.state !== 'CLOSED') this.write({ $case: 'resultAck', value: { taskId } });
      return;
    }
    // The agent re-sends unacknowledged results only in its next Hello (docs/agent-protocol.md §6),
    // and a healthy stream may live for days: without trying again here, a result that came while
    // the results service or Redis restarted would wait for the next reconnect.
    if (this.state === 'CLOSED') return;
    const delayMs = Math.min(RESULT_RETRY_MAX_MS, RESULT_RETRY_INITIAL_MS * 2 ** Math.min(attempt, 16));
    const timer = setTimeout(() => {
      this.retryTimers.delete(timer);
      this.enqueueReport(() => this.settle(this.recordFinished(finished, attempt + 1)));
    }, delayMs);
    timer.unref();
    this.retryTimers.add(timer);
  }
}
