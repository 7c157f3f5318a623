import { randomUUID } from 'node:crypto';
import type { RunCommand } from '../../gen/baton/v1/agent_gateway_service';
import type { GetRunProgressResponse, ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { NodeResult, NodeState, RunState } from '../../gen/baton/v1/run';
import { unary } from '../../lib/grpc-client';
import type { Logger } from '../../lib/logger';
import { LIMITS } from '../../lib/limits';
import { isFinalRunState } from '../../lib/run-states';
import { injectTraceContext, tracer } from '../../lib/tracing';
import type { TraceContext } from './agent-session';
import type { Dispatcher } from './dispatcher';
import type { FinishedNotices } from './finished-notices';
import type { DownloadFailure } from './download-gate';
import { errorText } from './error-text';
import type { NodeIndex } from './node-index';
import { recordResults, unstartedResult, type RunIdentity } from './node-results';
import { batchOf, nodesThroughBatch, type OrchestrationState, type RunStateStore, type TransitionOutcome } from './run-state';
import { TRACKED_RUN_TTL_MS, type RunTracker, type TrackedRun } from './run-tracker';

/** Default time a node's agent may be gone (offline in the index) before its runs record it NO_RESPONSE "agent lost", in s. */
export const DEFAULT_AGENT_LOST_AFTER_S = 300;

/** Default time to live of a run's coordinator lease, in s; the coordinator renews it RUN_LEASE_RENEWALS times in that time. */
export const DEFAULT_RUN_LEASE_S = 10;

/**
 * Renewals of a run's coordinator lease per lease period. A renewal is a timer and a Redis
 * reply, so an event loop held for a few seconds (a collection, a storm of Hellos) and a Redis
 * answering late both delay it: five a period leave four fifths of the lease for such delays,
 * where one every third left two thirds and, with a renewal still unanswered, lost a tick.
 */
export const RUN_LEASE_RENEWALS = 5;

/** Renewals of one run's lease sent and not yet answered, at most: a Redis answering late is not sent more renewals than it has replies owed. */
const RUN_LEASE_RENEWALS_IN_FLIGHT = 3;

/** How often a coordinator reads its run's status from the results service (results that reached other replicas, a cancel), in ms. */
export const RUN_REFRESH_MS = 10_000;

/**
 * Longest a batch waits for every node of the previous batch to finish before the run gives up
 * on its later batches, in ms (the tracker's TTL: one hour). A node that never reports while its
 * agent stays connected must not hold the batch loop forever.
 */
export const BATCH_WAIT_LIMIT_MS = TRACKED_RUN_TTL_MS;

/** Hosts one GetRunProgress looks up (the results service takes at most a thousand). */
const PROGRESS_PAGE_HOSTS = LIMITS.progressHosts.max;
/** How often a coordinator reads the nodes that finished on other replicas, in ms. */
const NOTICES_POLL_MS = 250;

/** How often a node that a resumed batch still has to reach is looked for again, in ms. */
const RESEND_POLL_MS = 500;

/** statusmsg prefix of a node recorded NO_RESPONSE because its agent stayed away. */
export const AGENT_LOST = 'agent lost';

/** What the coordinator works with. */
export interface RunCoordinatorOptions {
  store: RunStateStore;
  results: ResultsServiceClient;
  /** How commands reach the agents (dispatcher.ts). */
  dispatcher: Dispatcher;
  /** True when the node's agent has a live session on this scheduler. */
  connectedHere: (node: string) => boolean;
  index: NodeIndex;
  tracker: RunTracker;
  log: Logger;
  /** ms every node gets to download and verify the files. */
  downloadTimeoutMs: number;
  /** Longest a batch waits for the previous one, in ms; default BATCH_WAIT_LIMIT_MS. */
  batchWaitLimitMs?: number;
  /** ms a node's agent may be gone before its runs record it NO_RESPONSE; default DEFAULT_AGENT_LOST_AFTER_S. */
  agentLostAfterMs?: number;
  /** ms between reads of the run's status; default RUN_REFRESH_MS. */
  refreshMs?: number;
  /** Nodes of the run that finished on other replicas (finished-notices.ts); default none (one replica). */
  notices?: FinishedNotices;
}

/**
 * One run this replica coordinates: its state as last written, its plan and command, and the
 * timers that renew the lease, refresh the run's status and look for lost agents.
 */
export class CoordinatedRun {
  /** True once another coordinator took the run over (or its state is gone): this one does nothing more. */
  fenced = false;
  /** True once the coordination ended here (finished, fenced, or the scheduler stops). */
  stopped = false;
  /** How many nodes were not final at the last refresh tick. */
  pendingAtLastTick = -1;
  /** The last entry read from the run's finished notices. */
  noticesFrom = '0-0';
  /** Lease renewal, status refresh and lost-agent checks. */
  readonly timers: NodeJS.Timeout[] = [];

  constructor(
    public state: OrchestrationState,
    readonly plan: string[],
    readonly command: RunCommand,
    readonly tracked: TrackedRun,
  ) {}

  get identity(): RunIdentity {
    return { taskId: this.state.taskId, task: this.command.task, caller: this.command.caller };
  }

  /** The nodes batch `k` sends to. */
  batch(k: number): string[] {
    return batchOf(this.plan, this.state.batchSize, k);
  }

  /** The nodes the run command went (or is going) to. */
  dispatched(): string[] {
    return this.state.phase === 'GATE' ? [] : nodesThroughBatch(this.plan, this.state.batchSize, this.state.batch);
  }
}

/**
 * Drives runs through their orchestration state (run-state.ts) from whatever phase Redis says
 * they are in: the download gate, the batches with their sleeps, and the wait for every node,
 * renewing the run's coordinator lease all along. Used for the runs this replica starts and for
 * the runs it takes over from a coordinator that is gone (run-resumer.ts).
 */
export class RunCoordinator {
  private readonly runs = new Map<string, CoordinatedRun>();
  private readonly agentLostAfterMs: number;
  private readonly refreshMs: number;
  private readonly batchWaitLimitMs: number;

  constructor(private readonly options: RunCoordinatorOptions) {
    this.batchWaitLimitMs = options.batchWaitLimitMs ?? BATCH_WAIT_LIMIT_MS;
    this.agentLostAfterMs = options.agentLostAfterMs ?? DEFAULT_AGENT_LOST_AFTER_S * 1000;
    this.refreshMs = options.refreshMs ?? RUN_REFRESH_MS;
  }

  /** True when this replica coordinates the run. */
  coordinates(taskId: string): boolean {
    return this.runs.has(taskId);
  }

  /** Starts coordinating a run whose state this replica wrote or took over: lease renewal, status refresh, lost-agent checks. */
  adopt(state: OrchestrationState, plan: string[], command: RunCommand, tracked: TrackedRun): CoordinatedRun {
    const run = new CoordinatedRun(state, plan, command, tracked);
    this.runs.set(state.taskId, run);
    const every = (ms: number, what: string, fn: () => Promise<void>) => {
      let busy = false;
      const timer = setInterval(() => {
        if (busy || run.stopped) return;
        busy = true;
        fn()
          .catch((err: unknown) => this.options.log.warn({ taskId: state.taskId, err: errorText(err) }, what))
          .finally(() => (busy = false));
      }, ms);
      timer.unref();
      run.timers.push(timer);
    };
    // Sent every period even while an earlier renewal waits for its answer: the lease is extended
    // from when Redis runs a renewal, so one sent while Redis is slow still counts when it runs.
    let renewing = 0;
    const renewal = setInterval(
      () => {
        if (renewing >= RUN_LEASE_RENEWALS_IN_FLIGHT || run.stopped) return;
        renewing++;
        this.renew(run)
          .catch((err: unknown) => this.options.log.warn({ taskId: state.taskId, err: errorText(err) }, 'could not renew the coordinator lease'))
          .finally(() => renewing--);
      },
      Math.max(50, Math.floor(this.options.store.leaseMs / RUN_LEASE_RENEWALS)),
    );
    renewal.unref();
    run.timers.push(renewal);
    every(this.refreshMs, 'could not read the status of a coordinated run', () => this.refreshIfStalled(run));
    const { notices } = this.options;
    if (notices) every(NOTICES_POLL_MS, 'could not read the nodes that finished on other replicas', () => this.readNotices(run, notices));
    every(Math.max(50, Math.min(30_000, Math.floor(this.agentLostAfterMs / 4))), 'could not check for lost agents', () => this.checkLostAgents(run));
    return run;
  }

  /** The download gate: every node of the plan downloads the files; resolves with the failures. Nodes not connected fail at once. */
  async gate(run: CoordinatedRun, traceContext: TraceContext): Promise<DownloadFailure[]> {
    return this.options.dispatcher.download(run.plan, this.downloadCommand(run), this.options.downloadTimeoutMs, traceContext);
  }

  /**
   * The gate of a resumed run: the downloads again (agents that hold the files answer at once),
   * where a node that did not answer (its agent may be reconnecting after the scheduler it knew
   * died) is asked again until the gate's deadline.
   */
  async regate(run: CoordinatedRun): Promise<DownloadFailure[]> {
    const deadline = Date.now() + this.options.downloadTimeoutMs;
    if ((await this.options.store.transition(run.state.taskId, run.state.epoch, 'keep', { gate_deadline: deadline })) === 'fenced') run.fenced = true;
    const command = this.downloadCommand(run);
    const failed: DownloadFailure[] = [];
    let waiting = [...run.plan];
    while (waiting.length > 0 && !run.fenced && !run.tracked.cancelled) {
      const failures = await this.options.dispatcher.download(waiting, command, Math.max(1, deadline - Date.now()), injectTraceContext());
      failed.push(...failures.filter((f) => f.state !== NodeState.NODE_STATE_NO_RESPONSE));
      waiting = failures.filter((f) => f.state === NodeState.NODE_STATE_NO_RESPONSE).map((f) => f.node);
      if (Date.now() + RESEND_POLL_MS >= deadline) {
        failed.push(...failures.filter((f) => f.state === NodeState.NODE_STATE_NO_RESPONSE));
        break;
      }
      if (waiting.length > 0) await new Promise((resolve) => setTimeout(resolve, RESEND_POLL_MS));
    }
    return failed.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  }

  /**
   * Sends batch `k`: the 'send' transition first (refused once CancelRun set the flag), then the
   * run command to each node, marked `sending` meanwhile so that a CancelRun signals the nodes
   * only once their commands are out. Nodes not connected are recorded NO_RESPONSE.
   */
  async sendBatch(run: CoordinatedRun, k: number): Promise<TransitionOutcome> {
    const outcome = await this.options.store.transition(run.state.taskId, run.state.epoch, 'send', { phase: 'RUNNING', batch: k, sending: '1' });
    if (outcome !== 'ok') return this.refused(run, outcome);
    run.state = { ...run.state, phase: 'RUNNING', batch: k };
    const lost = await this.send(run, run.batch(k));
    await this.sent(run);
    if (lost.length > 0) {
      const why = 'the node disconnected before the run command could be sent';
      try {
        await this.record(
          run.state.taskId,
          lost.map((n) => unstartedResult(run.identity, n, NodeState.NODE_STATE_NO_RESPONSE, why)),
        );
      } catch (err) {
        // Never thrown: the commands went out, so the run must neither be failed as a whole nor
        // its later batches stopped by a results service that did not answer this once.
        this.options.log.warn(
          { taskId: run.state.taskId, nodes: lost.length, err: errorText(err) },
          'could not record nodes that left before their run command',
        );
      }
      for (const n of lost) this.markFinal(run, n);
    }
    return 'ok';
  }

  /** Clears `sending` once the commands are out; a failure only makes a CancelRun wait for the lease (logged). */
  private async sent(run: CoordinatedRun): Promise<void> {
    try {
      await this.options.store.transition(run.state.taskId, run.state.epoch, 'keep', { sending: '0' });
    } catch (err) {
      this.options.log.warn({ taskId: run.state.taskId, err: errorText(err) }, 'could not record that the run commands are out');
    }
  }

  /**
   * Sends batch `k` of a resumed run again to its nodes without a final result (an agent never
   * runs a task id twice: one that has it answers with its result or ignores it). A node that
   * cannot be reached is tried again until it is final (its result, or lost).
   */
  async resendBatch(run: CoordinatedRun, k: number): Promise<TransitionOutcome> {
    let waiting = run.batch(k).filter((n) => !run.tracked.isFinal(n));
    // As long as a batch waits for the previous one: then the batch loop gives up on the run.
    const until = Date.now() + this.batchWaitLimitMs;
    while (waiting.length > 0 && !run.stopped && Date.now() < until) {
      // Every round is a 'send': a cancel acknowledged meanwhile stops even a late re-send.
      const outcome = await this.options.store.transition(run.state.taskId, run.state.epoch, 'send', { sending: '1' });
      if (outcome !== 'ok') return this.refused(run, outcome);
      const unreached = new Set(await this.send(run, waiting));
      await this.sent(run);
      waiting = waiting.filter((n) => unreached.has(n) && !run.tracked.isFinal(n));
      if (waiting.length > 0) await new Promise((resolve) => setTimeout(resolve, RESEND_POLL_MS));
    }
    return 'ok';
  }

  /**
   * Batches k+1.. of a run whose batch `k` went out: each once the previous one is final and the
   * batch sleep passed; then the wait for every node; then the state is removed. Stops on cancel
   * or when fenced. `sleepUntilMs` resumes a run that was SLEEPING after batch `k`.
   */
  async continueFrom(run: CoordinatedRun, k: number, sleepUntilMs?: number): Promise<void> {
    const { store, log, tracker } = this.options;
    const taskId = run.state.taskId;
    try {
      for (let i = k; ; i++) {
        if (sleepUntilMs === undefined) {
          const finished = await run.tracked.waitForNodes(i === run.state.batches - 1 ? run.plan : run.batch(i), this.batchWaitLimitMs);
          if (run.fenced || run.stopped || run.tracked.cancelled) return;
          if (!finished) {
            if (i < run.state.batches - 1) await this.abandonAfter(run, i);
            return;
          }
          if (i === run.state.batches - 1) return;
          sleepUntilMs = Date.now() + run.state.sleepMs;
          const slept = await store.transition(taskId, run.state.epoch, 'keep', { phase: 'SLEEPING', sleep_until: sleepUntilMs });
          if (slept !== 'ok') return void this.refused(run, slept);
          run.state = { ...run.state, phase: 'SLEEPING', sleepUntilMs };
        }
        if (await run.tracked.pauseUnlessCancelled(Math.max(0, sleepUntilMs - Date.now()))) return;
        sleepUntilMs = undefined;
        tracker.touch(run.tracked);
        if ((await this.sendBatch(run, i + 1)) !== 'ok') return;
        log.info({ taskId, batch: i + 2, of: run.state.batches, nodes: run.batch(i + 1).length }, 'run command sent to the next batch');
      }
    } finally {
      await this.finish(run);
    }
  }

  /** Stops coordinating every run here (the scheduler stops) and hands each over: its lease is released for another replica. */
  async releaseAll(): Promise<void> {
    const runs = [...this.runs.values()];
    for (const run of runs) this.stop(run);
    await Promise.all(runs.map((run) => this.options.store.release(run.state.taskId, run.state.epoch).catch(() => undefined)));
  }

  /**
   * Gives a run up after an error: this replica stops coordinating it and releases its lease, so
   * that the next scan (here or on another replica) takes it over and resumes it afresh.
   */
  async abandon(run: CoordinatedRun): Promise<void> {
    if (run.stopped) return;
    this.stop(run);
    if (!run.fenced) await this.options.store.release(run.state.taskId, run.state.epoch).catch(() => undefined);
  }

  /** Ends the coordination of a run here and removes its state (unless fenced: it belongs to another coordinator then). */
  async finish(run: CoordinatedRun): Promise<void> {
    if (run.stopped) return;
    this.stop(run);
    if (run.fenced) return;
    try {
      await this.options.store.finish(run.state.taskId, run.state.epoch);
    } catch (err) {
      // Left in Redis: a scan takes the run over once the lease lapses and finds it over.
      this.options.log.warn({ taskId: run.state.taskId, err: errorText(err) }, 'could not remove the state of a finished run');
    }
  }

  private stop(run: CoordinatedRun): void {
    run.stopped = true;
    for (const t of run.timers) clearInterval(t);
    run.tracked.interrupt(); // the batch loop wakes, sees `stopped` and leaves the run alone
    if (this.runs.get(run.state.taskId) === run) this.runs.delete(run.state.taskId);
  }

  private refused(run: CoordinatedRun, outcome: TransitionOutcome): TransitionOutcome {
    if (outcome === 'fenced') {
      run.fenced = true;
      this.options.log.warn({ taskId: run.state.taskId, epoch: run.state.epoch }, 'another scheduler took the run over; this one stops coordinating it');
    } else if (outcome === 'cancelled') run.tracked.cancel();
    return outcome;
  }

  /**
   * Hands the run command to the dispatcher; returns the nodes it could not reach. When the
   * dispatcher fails, where the command went is unknown: the nodes keep their state and a result
   * that comes is recorded as usual (agents never run a task id twice, so a resend is safe).
   */
  private async send(run: CoordinatedRun, nodes: string[]): Promise<string[]> {
    for (const node of nodes) run.tracked.dispatched.add(node);
    // One span per batch; each node's execution span on its agent is a child of it, through the
    // trace context carried by the run command (the stream itself outlives any run).
    const span = tracer.startSpan('baton.dispatch', { attributes: { 'baton.task_id': run.state.taskId, 'baton.nodes': nodes.length } });
    let lost: string[] = [];
    try {
      lost = await this.options.dispatcher.run(nodes, run.command, injectTraceContext(span));
    } catch (err) {
      this.options.log.warn({ taskId: run.state.taskId, nodes: nodes.length, err: errorText(err) }, 'the run command could not be handed to every scheduler');
    }
    span.setAttribute('baton.lost_nodes', lost.length);
    span.end();
    return lost;
  }

  private downloadCommand(run: CoordinatedRun) {
    const c = run.command;
    return { requestId: randomUUID(), taskId: c.taskId, task: c.task, environment: c.environment, files: c.files };
  }

  /** A batch did not finish in time: the nodes of later batches are recorded FAILED, never started. */
  private async abandonAfter(run: CoordinatedRun, i: number): Promise<void> {
    const waiting = run.plan.slice((i + 1) * run.state.batchSize);
    const why = `not started: batch ${i + 1} of ${run.state.batches} did not finish within ${Math.round(this.batchWaitLimitMs / 1000)} s`;
    this.options.log.warn({ taskId: run.state.taskId, batch: i + 1, notStarted: waiting.length }, 'a batch did not finish in time; later batches abandoned');
    await this.record(
      run.state.taskId,
      waiting.map((n) => unstartedResult(run.identity, n, NodeState.NODE_STATE_FAILED, why)),
    );
    for (const n of waiting) this.markFinal(run, n);
  }

  /** Marks a node's result final for the run's waits (and for the tracker, which forgets a run once all are final). */
  private markFinal(run: CoordinatedRun, host: string): void {
    this.options.tracker.markFinal(run.state.taskId, host);
    run.tracked.markFinal(host);
  }

  private async renew(run: CoordinatedRun): Promise<void> {
    const renewed = await this.options.store.renew(run.state.taskId, run.state.epoch);
    if (run.stopped) return;
    if (!renewed) {
      this.refused(run, 'fenced');
      this.stop(run);
    } else if (renewed.cancelled) run.tracked.cancel();
  }

  /**
   * The periodic refresh: read only when no result reached this replica since the last tick. A
   * run whose results all come here (one replica) then costs no read while they flow; one whose
   * results land elsewhere is read every other tick at most.
   */
  private async refreshIfStalled(run: CoordinatedRun): Promise<void> {
    const pending = run.tracked.pendingCount;
    const stalled = pending === run.pendingAtLastTick;
    run.pendingAtLastTick = pending;
    if (stalled) await this.refresh(run);
  }

  /** Marks final the nodes other replicas announced since the last read. */
  private async readNotices(run: CoordinatedRun, notices: FinishedNotices): Promise<void> {
    if (run.tracked.done) return;
    const { nodes, last } = await notices.read(run.state.taskId, run.noticesFrom);
    run.noticesFrom = last;
    for (const n of nodes) this.markFinal(run, n);
  }

  /**
   * Catches up with what the results service knows: a run that ended (cancelled, or every node
   * final) and nodes whose result reached it by another way (another replica's agents, a
   * CancelRun, an earlier coordinator). One read whose size does not depend on the run's
   * (GetRunProgress: its state and final count) answers the common case, where this replica
   * knows every final node; only when more nodes are final than it knows are the nodes it still
   * waits for looked up, a page at a time, until the difference is found. A read that fails
   * throws: the caller logs it and the next tick reads again, the run goes on meanwhile.
   */
  async refresh(run: CoordinatedRun): Promise<void> {
    if (run.tracked.done) return;
    const progress = await this.progress(run, []);
    if (this.ended(run, progress)) return;
    if (progress.finalNodes <= run.tracked.finalCount) return;
    const waiting = run.tracked.pendingNodes();
    for (let i = 0; i < waiting.length && progress.finalNodes > run.tracked.finalCount && !run.stopped; i += PROGRESS_PAGE_HOSTS) {
      const page = await this.progress(run, waiting.slice(i, i + PROGRESS_PAGE_HOSTS));
      for (const host of page.finalHosts) this.markFinal(run, host);
      if (this.ended(run, page)) return;
    }
  }

  private progress(run: CoordinatedRun, hosts: string[]): Promise<GetRunProgressResponse> {
    const { results } = this.options;
    return unary(results, results.getRunProgress, { taskId: run.state.taskId, hosts });
  }

  /** True when the run is over in the results service: every node is marked final here (and a cancel noted). */
  private ended(run: CoordinatedRun, progress: GetRunProgressResponse): boolean {
    if (!isFinalRunState(progress.state)) return false;
    if (progress.state === RunState.RUN_STATE_CANCELLED) run.tracked.cancel();
    for (const n of run.plan) this.markFinal(run, n);
    return true;
  }

  /**
   * Records NO_RESPONSE ("agent lost") for each node the run command went to whose result is not
   * final and whose agent has been gone longer than the configured time, so the run can end. A
   * real result that comes later still replaces it (the results service never lets a
   * NO_RESPONSE replace a final result, and lets a final result replace a NO_RESPONSE).
   */
  async checkLostAgents(run: CoordinatedRun): Promise<void> {
    // A node with a live session here is not lost: only the others are looked up in the index.
    const { connectedHere } = this.options;
    const candidates = run.dispatched().filter((n) => !run.tracked.isFinal(n) && !connectedHere(n));
    if (candidates.length === 0) return;
    const nowMs = Date.now();
    const presence = await this.options.index.presence(candidates);
    const freshSince = this.options.index.freshSinceMs(nowMs);
    const lost = candidates.filter((n) => {
      const p = presence.get(n);
      if (p && p.connected && p.lastSeenMs >= freshSince) return false;
      return nowMs - (p?.lastSeenMs ?? 0) > this.agentLostAfterMs;
    });
    if (lost.length === 0) return;
    const afterS = Math.round(this.agentLostAfterMs / 1000);
    await this.record(
      run.state.taskId,
      lost.map((n) => {
        const since = presence.get(n)?.lastSeenMs;
        return unstartedResult(
          run.identity,
          n,
          NodeState.NODE_STATE_NO_RESPONSE,
          `${AGENT_LOST}: the agent has been gone since ${since ? new Date(since).toISOString() : 'an unknown time'} (more than ${afterS} s)`,
        );
      }),
    );
    this.options.log.warn({ taskId: run.state.taskId, nodes: lost.length }, 'nodes recorded NO_RESPONSE: their agents have been gone too long');
    for (const n of lost) this.markFinal(run, n);
  }

  private record(taskId: string, results: NodeResult[]): Promise<void> {
    return recordResults(this.options.results, taskId, results);
  }
}
