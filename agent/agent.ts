import { SpanStatusCode, type Context } from '@opentelemetry/api';
import { TaskFinished, type DownloadCommand, type Hello, type RunCommand, type Welcome } from '../gen/baton/v1/agent_gateway_service';
import { MetadataServiceClient } from '../gen/baton/v1/metadata_service';
import { NodeState, nodeStateToJSON, type NodeResult } from '../gen/baton/v1/run';
import { makeClient } from '../lib/grpc-client';
import type { Logger } from '../lib/logger';
import { DEFAULT_ENVIRONMENT, ENVIRONMENT_NAME } from '../lib/names';
import { extractTraceContext, injectTraceContext, inSpan } from '../lib/tracing';
import { AGENT_CAPABILITIES, schedulerTargets, type ResolvedAgentOptions } from './agent-options';
import { agentVersion } from './agent-version';
import { AgentConnection, type SchedulerMessage, type Session } from './connection';
import { FactsSource } from './facts-source';
import { FileCache } from './file-cache';
import { agentFeatures } from './implementation';
import { Spool } from './spool';
import { StartHold } from './start-hold';
import { TaskRunner, type TaskEvents } from './task-runner';
import { LIMITS } from '../lib/limits';

/**
 * The node agent: the connection to the scheduler plus what its commands do — download into
 * the file cache (docs/agent-protocol.md §4), run (§5), acknowledge (§6), cancel (§7).
 */

/**
 * Most bytes of unacknowledged results put in one Hello. The rest follow as TaskFinished
 * messages right after the Welcome, so a spool full of results never makes a Hello too large
 * for the scheduler to accept (which would keep the agent from ever connecting).
 */
export const MAX_HELLO_RESULTS_BYTES = 4 * 1024 * 1024;

/** What the agent needs besides its options. */
export interface AgentDependencies {
  log: Logger;
  /** The node's facts and classes; default: read from the options' files. */
  facts?: FactsSource;
  /** Task runner options for tests (kill grace). */
  killGraceMs?: number;
  /** Where the "connected" line goes; default stdout. */
  announce?: (line: string) => void;
  /** The node's features; default agentFeatures(). */
  features?: readonly string[];
}

/**
 * Splits results into those that fit the Hello's byte budget and count (LIMITS.helloResults, what
 * the scheduler accepts) and the rest (at least one goes in the Hello).
 */
export function splitForHello(results: NodeResult[], budgetBytes = MAX_HELLO_RESULTS_BYTES): { hello: TaskFinished[]; later: TaskFinished[] } {
  const hello: TaskFinished[] = [];
  const later: TaskFinished[] = [];
  let used = 0;
  for (const result of results) {
    const msg: TaskFinished = { result };
    const size = TaskFinished.encode(msg).finish().length;
    if (later.length === 0 && (hello.length === 0 || (used + size <= budgetBytes && hello.length < LIMITS.helloResults.max))) {
      hello.push(msg);
      used += size;
    } else {
      later.push(msg);
    }
  }
  return { hello, later };
}

/**
 * The metadata service is needed only while task files download, which the cache makes rare:
 * the channel goes idle this long after its last call, and its connection is then closed (at
 * grpc-js's next sweep of unused connections, within seconds). Kept open, every agent of a
 * fleet would hold a connection to the metadata service, which would answer its keepalive
 * pings for nothing.
 */
const METADATA_CHANNEL_OPTIONS = { 'grpc.client_idle_timeout_ms': 5_000 };

/** The node agent. */
export class Agent {
  readonly cache: FileCache;
  readonly spool: Spool;
  readonly runner: TaskRunner;
  private readonly connection: AgentConnection;
  private readonly log: Logger;
  private metadata?: { address: string; client: MetadataServiceClient };
  private welcomeMetadataAddress = '';
  // Unacknowledged results that did not fit in the Hello; sent after the Welcome.
  private afterWelcome: TaskFinished[] = [];
  private sweepTimer?: NodeJS.Timeout;
  private readonly startHold = new StartHold();
  private readonly facts: FactsSource;

  constructor(
    private readonly options: ResolvedAgentOptions,
    private readonly deps: AgentDependencies,
  ) {
    this.log = deps.log;
    this.facts =
      deps.facts ??
      new FactsSource({ identity: options.identity, factsFile: options.factsFile, classesFile: options.classesFile, classes: options.classes, log: deps.log });
    this.cache = new FileCache(options.cacheDir);
    this.spool = new Spool(options.spoolDir, deps.log);
    this.runner = new TaskRunner({
      identity: options.identity,
      spool: this.spool,
      cache: this.cache,
      log: deps.log,
      killGraceMs: deps.killGraceMs,
      maxConcurrentTasks: options.maxConcurrentTasks,
      maxOutputBytes: options.maxOutputBytes,
      features: deps.features ?? agentFeatures(),
    });
    this.connection = new AgentConnection({
      addresses: schedulerTargets(options.schedulerAddress),
      tls: options.tls,
      identity: options.identity,
      log: deps.log,
      heartbeatIntervalS: options.heartbeatIntervalS,
      schedulerTimeoutS: options.schedulerTimeoutS,
      hello: () => this.hello(),
      runningTasks: () => this.runner.runningCount,
      onWelcome: (welcome, session) => this.welcome(welcome, session),
      onCommand: (message, session, traceContext) => this.command(message, session, traceContext),
      announce: deps.announce,
    });
  }

  /**
   * Picks up the runs in the spool (finished ones get their result.json, live ones are
   * watched), then connects to the scheduler (and keeps reconnecting until `stop`); the first
   * Hello carries every unacknowledged result.
   */
  async start(): Promise<void> {
    const recovered = await this.runner.recover(this.taskEvents());
    if (recovered.finished + recovered.adopted > 0) this.log.info(recovered, 'runs recovered from the spool');
    this.connection.start();
    // A change goes out on the current session; a session opened later carries it in its Hello.
    this.facts.start(this.options.factsPollIntervalS * 1000, (value) => this.connection.send({ $case: 'factsUpdate', value }));
    const sweepMs = this.options.retentionSweepIntervalS * 1000;
    this.sweepTimer = setInterval(() => void this.sweep(), sweepMs);
    this.sweepTimer.unref();
  }

  /**
   * Retention, so that a node's disk does not fill up with old runs (Choria never cleaned up):
   * removes acknowledged runs' spool directories and cache files unused for retention-s. Never
   * touches a queued or running run, or an unacknowledged result.
   */
  async sweep(nowMs = Date.now()): Promise<{ runs: number; files: number }> {
    const maxAgeMs = this.options.retentionS * 1000;
    try {
      const runs = await this.spool.sweep(maxAgeMs, (id) => this.runner.isRunning(id), nowMs);
      const files = await this.cache.sweep(maxAgeMs, this.runner.filesInUse(), nowMs);
      if (runs.length + files.length > 0) this.log.info({ runs: runs.length, files: files.length }, 'retention removed old runs and cache files');
      return { runs: runs.length, files: files.length };
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'retention sweep failed');
      return { runs: 0, files: 0 };
    }
  }

  /** Ends the connection; running tasks keep running. */
  async stop(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.facts.stop();
    this.startHold.clear();
    await this.connection.stop();
    this.metadata?.client.close();
  }

  private async hello(): Promise<Omit<Hello, 'followsHeartbeatInterval'>> {
    const { hello, later } = splitForHello(await this.spool.listUnacknowledged());
    this.afterWelcome = later;
    const { facts, classes } = this.facts.current();
    return {
      identity: this.options.identity,
      facts,
      classes,
      agents: [...AGENT_CAPABILITIES],
      version: agentVersion(),
      unacknowledgedResults: hello,
    };
  }

  private welcome(welcome: Welcome, session: Session): void {
    this.welcomeMetadataAddress = welcome.metadataAddress;
    for (const value of this.afterWelcome.splice(0)) session.send({ $case: 'taskFinished', value });
  }

  /** Handles a command; `traceContext` is the scheduler's span it belongs to (the stream outlives any run). */
  private command(message: SchedulerMessage, session: Session, traceContext: Record<string, string>): void {
    switch (message.$case) {
      case 'download': {
        const cmd = message.value;
        const attributes = { 'baton.task': cmd.task, 'baton.task_id': cmd.taskId, 'baton.node': this.options.identity, 'baton.environment': cmd.environment };
        void inSpan('agent.download', attributes, () => this.download(cmd, session), extractTraceContext(traceContext));
        return;
      }
      case 'run':
        this.execute(message.value, extractTraceContext(traceContext)).catch((err: unknown) =>
          this.log.error({ err, taskId: message.value.taskId }, 'run failed unexpectedly'),
        );
        return;
      case 'cancel':
        if (!this.runner.cancel(message.value.taskId)) {
          this.log.info(
            { taskId: message.value.taskId },
            'cancel for a task not held here; remembered, so that its run command, if it comes, does not start it',
          );
        }
        return;
      case 'resultAck':
        this.spool
          .markAcked(message.value.taskId)
          .then((ok) => ok || this.log.warn({ taskId: message.value.taskId }, 'ack for a result this agent does not hold; ignored'))
          .catch((err: unknown) => this.log.error({ err, taskId: message.value.taskId }, 'cannot record the ack'));
        return;
      case 'welcome':
        return; // handled by the connection
    }
  }

  /** Runs a RunCommand in an `agent.execute` span, a child of the scheduler's dispatch span. */
  private execute(cmd: RunCommand, parent: Context): Promise<void> {
    const attributes = { 'baton.task': cmd.task, 'baton.task_id': cmd.taskId, 'baton.node': this.options.identity, 'baton.environment': cmd.environment };
    return inSpan(
      'agent.execute',
      attributes,
      async (span) => {
        const result = await this.runner.run(cmd, this.taskEvents());
        if (!result) return;
        span.setAttributes({ 'baton.exit_code': result.exitcode, 'baton.node_state': nodeStateToJSON(result.state) });
        if (result.state !== NodeState.NODE_STATE_SUCCEEDED)
          span.setStatus({ code: SpanStatusCode.ERROR, message: result.statusmsg || nodeStateToJSON(result.state) });
      },
      parent,
    );
  }

  /**
   * TaskStarted / TaskFinished go to whichever session is current when they are sent, with the
   * trace context of the span they happen in, so recording them joins the run's trace. A
   * TaskStarted is held (start-hold.ts) and never sent for a task that ends within the hold.
   */
  private taskEvents(): TaskEvents {
    return {
      started: (value) => {
        const traceContext = injectTraceContext();
        this.startHold.started(value.taskId, () => this.connection.send({ $case: 'taskStarted', value }, traceContext));
      },
      finished: (result) => {
        this.startHold.finished(result.taskId);
        this.connection.send({ $case: 'taskFinished', value: { result } }, injectTraceContext());
      },
    };
  }

  /** Handles a DownloadCommand; the answer goes to the session that asked. Never rejects. */
  private async download(cmd: DownloadCommand, session: Session): Promise<void> {
    const answer = (ok: boolean, downloaded: number, error: string) =>
      session.send({ $case: 'downloadResult', value: { requestId: cmd.requestId, ok, downloaded, error } });
    try {
      const environment = cmd.environment || DEFAULT_ENVIRONMENT;
      if (!ENVIRONMENT_NAME.test(environment)) throw new Error(`environment '${environment}' does not match ${ENVIRONMENT_NAME.source}`);
      const downloaded = await this.cache.ensure(cmd.files, environment, this.metadataClient());
      this.log.info({ taskId: cmd.taskId, task: cmd.task, files: cmd.files.length, downloaded }, 'task files ready');
      answer(true, downloaded, '');
    } catch (err) {
      const msg = `node ${this.options.identity}: ${(err as Error).message}`;
      this.log.warn({ taskId: cmd.taskId, task: cmd.task, err: msg }, 'download failed');
      answer(false, 0, msg);
    }
  }

  /** The metadata service client: the configured address, else the Welcome's. */
  private metadataClient(): MetadataServiceClient {
    const address = this.options.metadataAddress ?? this.welcomeMetadataAddress;
    if (!address) throw new Error('no metadata service address: the Welcome named none and metadata-address is not set');
    if (this.metadata?.address !== address) {
      this.metadata?.client.close();
      this.metadata = { address, client: makeClient(MetadataServiceClient, address, this.options.tls, METADATA_CHANNEL_OPTIONS) };
    }
    return this.metadata.client;
  }
}
