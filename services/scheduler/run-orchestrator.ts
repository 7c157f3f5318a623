import { status as grpcStatus } from '@grpc/grpc-js';
import { trace } from '@opentelemetry/api';
import type { RunCommand } from '../../gen/baton/v1/agent_gateway_service';
import type { MetadataServiceClient } from '../../gen/baton/v1/metadata_service';
import type { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { NodeResult, NodeState, RunState, type Run } from '../../gen/baton/v1/run';
import type { RunTaskRequest, RunTaskResponse } from '../../gen/baton/v1/scheduler_service';
import type { Task } from '../../gen/baton/v1/task';
import { Filter } from '../../gen/baton/v1/filter';
import { AccessControl, onBehalfOf, ON_BEHALF_OF_SELF, type CallerSource } from '../../lib/access-control';
import { auditInput, inputKeys, type AuditRecord } from '../../lib/audit';
import { FailedPreconditionError, InvalidArgumentError, isServiceError, UnavailableError } from '../../lib/errors';
import { unary } from '../../lib/grpc-client';
import type { Logger } from '../../lib/logger';
import { metrics } from '../../lib/metrics';
import { newTaskId } from '../../lib/task-id';
import { sensitiveParameters, validateTaskInput, type ValidatedTaskInput } from '../../lib/task-input';
import { inSpan, injectTraceContext } from '../../lib/tracing';
import { planBatches } from './batch-plan';
import { resultsServiceSource, runDiscovery } from './discovery-plan';
import { errorText } from './error-text';
import { DEFAULT_DOWNLOAD_TIMEOUT_S, gateFailureReason, type DownloadFailure } from './download-gate';
import { chooseExecutable, type ChosenExecutable } from './executable';
import type { NodeIndex } from './node-index';
import { recordResults, runRecordDeadlineMs, unstartedResult, type RunIdentity } from './node-results';
import { CANCELLED_BEFORE_START } from './run-cancel';
import { resolveRunRequest, type ResolvedRunRequest } from './run-request';
import type { RunRequests } from './run-requests';
import type { CoordinatedRun, RunCoordinator } from './run-coordinator';
import type { OrchestrationState, RunStateStore } from './run-state';
import type { RunTracker, TrackedRun } from './run-tracker';
import { waitForFinalRun } from './run-watch';

/** A request's filter as given, for audit lines (the proto's JSON form); null for none. */
export function filterForAudit(filter: Filter | undefined): unknown {
  return filter ? Filter.toJSON(filter) : null;
}

/** The run command every node of a run gets (stored with the run's state, so a coordinator taking over sends the same). */
function runCommandOf(run: PreparedRun): RunCommand {
  return {
    taskId: run.taskId,
    task: run.task,
    environment: run.request.environment,
    files: run.taskDef.files,
    executable: run.executable.path,
    // With implementations the agent picks one and applies its input method over the task's.
    inputMethod: run.taskDef.implementations.length > 0 ? run.taskDef.inputMethod : run.executable.inputMethod,
    implementations: run.taskDef.implementations,
    supportsNoop: run.taskDef.supportsNoop,
    inputJson: run.input.inputJson,
    sensitiveParameters: sensitiveParameters(run.taskDef),
    caller: run.caller,
    runAs: run.request.runAs,
    timeoutS: run.request.timeoutS,
    noop: run.request.noop,
  };
}

/** What the orchestrator works with. */
export interface RunOrchestratorOptions {
  metadata: MetadataServiceClient;
  results: ResultsServiceClient;
  index: NodeIndex;
  tracker: RunTracker;
  /** Runs' orchestration state in Redis. */
  store: RunStateStore;
  /** Drives runs through their state; the same one the run resumer uses. */
  coordinator: RunCoordinator;
  /** RunTask request ids already used (idempotency). */
  requests: RunRequests;
  log: Logger;
  /** Seconds every node gets to download and verify the files; default DEFAULT_DOWNLOAD_TIMEOUT_S. */
  downloadTimeoutS?: number;
  /** The policy (action `run`) and the audit log; default: everything allowed, nothing audited. */
  access?: AccessControl;
}

/** Options of one `RunOrchestrator.runTask` call. */
export interface RunTaskCallOptions {
  /**
   * Who the policy checks and `bolt_task()` terms read for (lib/access-control.ts
   * actingCaller); undefined for a service certificate acting for itself, which serves a request
   * checked already, so the policy is not consulted (the run is still audited). Default: the
   * run's caller.
   */
  checkAs?: string | undefined;
  /**
   * Called once the run exists, before any file is sent to a node (or, for a repeated request
   * id, once the first run is found), so that a streaming caller learns the task id at once.
   */
  onStarted?: (started: RunStartedNote) => void;
}

/** What `onStarted` is told: the run's task id, the run as stored, and whether a repeated request id named it. */
export interface RunStartedNote {
  taskId: string;
  run: Run | undefined;
  nodes: number;
  repeated: boolean;
}

/** Longest a duplicate RunTask waits for the first request's run to appear in the results service, in ms. */
export const DUPLICATE_RUN_APPEAR_MS = 10_000;

/**
 * Attempts of a run state change the results service did not answer in time or could not take
 * for now (UNAVAILABLE): a change is idempotent (one already made changes nothing), and a
 * results service or a Redis busy for a moment must not fail a run whose nodes are fine.
 */
export const STATE_CHANGE_ATTEMPTS = 3;
/** Pause between two attempts of a state change, in ms. */
const STATE_CHANGE_RETRY_MS = 500;
/** The gRPC codes after which a state change is tried again. */
const RETRIED_STATE_CHANGE_CODES: ReadonlySet<grpcStatus> = new Set([grpcStatus.DEADLINE_EXCEEDED, grpcStatus.UNAVAILABLE]);

/** Everything a run needs once it is validated and has nodes. */
interface PreparedRun extends RunIdentity {
  request: ResolvedRunRequest;
  taskDef: Task;
  input: ValidatedTaskInput;
  executable: ChosenExecutable;
  /** Online matches: the nodes the run is sent to. */
  nodes: string[];
  /** Matches that are offline: part of the run, recorded as NO_RESPONSE at once, so the caller sees them. */
  offline: string[];
}

/**
 * RunTask: validate → fetch the task → validate the input → discover → take the request id →
 * create the run → distribute the files and gate on every node holding them → run, batch by
 * batch → wait (foreground) or return at once (background).
 *
 * Batches are rolling (docs/decisions.md "Batches never overlap"): the next batch starts once every
 * node of the previous batch has a final result, then batch_sleep_s later. Choria's `--batch` on
 * `run_and_wait` behaves alike only because each node's reply comes when its task ends or after
 * 58 s (docs/choria-compat.md §1.3), so a long task lets the next batch start while it still
 * runs; with `--background` (`run_no_wait`) batches only pace the spawning. Here a batch never
 * starts while the previous one runs, in foreground and background alike, which is what batches
 * are for (updates and reboots, mcollective-choria#487).
 */
export class RunOrchestrator {
  private readonly downloadTimeoutMs: number;
  private readonly access: AccessControl;

  constructor(private readonly options: RunOrchestratorOptions) {
    this.access = options.access ?? AccessControl.none(options.log);
    this.downloadTimeoutMs = (options.downloadTimeoutS ?? DEFAULT_DOWNLOAD_TIMEOUT_S) * 1000;
  }

  /** Runs a task as RunTask describes; `call` is the server call (who is calling: lib/peer-identity.ts). */
  async runTask(req: RunTaskRequest, caller: CallerSource, call: RunTaskCallOptions = {}): Promise<RunTaskResponse> {
    const receivedMs = Date.now();
    const request = resolveRunRequest(req, caller);
    const checkAs = 'checkAs' in call ? call.checkAs : request.caller;
    const run = await this.prepare(request, checkAs);
    // After discovery (a `nodes` rule needs the selected nodes), before anything is stored or
    // sent: a denied run leaves nothing in Redis and reaches no agent.
    if (checkAs !== undefined) await this.authorize(run, checkAs);
    // The RunTask or StartRun server span (gRPC instrumentation) is the run's span on the scheduler.
    trace.getActiveSpan()?.setAttributes({
      'baton.task': run.task,
      'baton.task_id': run.taskId,
      'baton.environment': run.request.environment,
      'baton.nodes': run.nodes.length + run.offline.length,
      'baton.caller': run.caller,
    });
    const { results, tracker, requests, log, store, coordinator } = this.options;
    const { requestId } = run.request;
    // Taken only now: a request refused for bad input or no nodes may be retried with its id.
    if (requestId !== '') {
      const first = await requests.claim(run.caller, requestId, run.taskId);
      if (first !== undefined) {
        log.info({ taskId: first, requestId, caller: run.caller }, 'repeated request id; answering with the first run');
        return this.answerRepeat(first, run.request, call.onStarted);
      }
    }
    let created: Run | undefined;
    let state: OrchestrationState | undefined;
    const batches = planBatches(run.nodes, run.request.batch);
    const command = runCommandOf(run);
    try {
      // Fail closed: a run whose audit line cannot be written is not created (UNAVAILABLE).
      this.access.audit(this.auditLine(run));
      // Before the run exists: a run in the results service always has a state a scheduler resumes.
      state = await store.begin({
        taskId: run.taskId,
        plan: batches.flat(),
        batchSize: batches[0].length,
        batches: batches.length,
        sleepMs: run.request.batch?.sleepMs ?? 0,
        gateDeadlineMs: Date.now() + this.downloadTimeoutMs,
        command,
      });
      const nodes = [...run.nodes, ...run.offline].sort();
      created = (
        await unary(
          results,
          results.createRun,
          {
            run: {
              taskId: run.taskId,
              task: run.task,
              environment: run.request.environment,
              caller: run.caller,
              state: RunState.RUN_STATE_PENDING,
              nodes,
              filter: run.request.filter,
              inputJson: run.input.redactedJson,
              createTime: new Date(),
              endTime: undefined,
              error: '',
              noop: run.request.noop,
              requestId,
            },
          },
          { deadlineMs: runRecordDeadlineMs(nodes.length) },
        )
      ).run;
    } catch (err) {
      if (state) await store.finish(run.taskId, state.epoch).catch(() => undefined);
      if (requestId !== '') await requests.release(run.caller, requestId, run.taskId).catch(() => undefined);
      if (!(err instanceof UnavailableError))
        this.access.auditBestEffort({ event: 'run_failed', caller: run.caller, task_id: run.taskId, reason: errorText(err) });
      throw err;
    }
    log.info({ taskId: run.taskId, task: run.task, nodes: run.nodes.length, caller: run.caller, requestId: requestId || undefined }, 'run created');
    call.onStarted?.({ taskId: run.taskId, run: created, nodes: run.nodes.length + run.offline.length, repeated: false });
    const tracked = tracker.track(run.taskId, [...run.nodes, ...run.offline]);
    const coordinated = coordinator.adopt(state, batches.flat(), command, tracked);
    let settled = false;
    try {
      if (run.offline.length > 0) {
        // Choria drops offline matches silently; here they show in the run as not responding.
        await this.record(
          run.taskId,
          run.offline.map((n) => unstartedResult(run, n, NodeState.NODE_STATE_NO_RESPONSE, 'no response: the node was offline when the run started')),
        );
        for (const n of run.offline) tracked.markFinal(n);
      }
      return await this.dispatch(run, coordinated, created, () => (settled = true), receivedMs);
    } catch (err) {
      // Once the run command went out the nodes own the outcome (and later batches go on).
      if (!settled) {
        tracker.forget(tracked);
        // A replica that stalled (its event loop held, the machine's CPU taken) may find both a
        // call failed and its run taken over by another replica meanwhile, which resumes it: the
        // run is that replica's now, and failing it here would end a run that goes on.
        if (await this.takenOver(coordinated)) return this.wentOn(run, coordinated, created, () => undefined, 'a step of the run failed', err);
        await this.failQuietly(run.taskId, run.nodes.length + run.offline.length, `the scheduler could not complete the run: ${errorText(err)}`);
        await coordinator.finish(coordinated);
      }
      throw err;
    }
  }

  /** True when another scheduler coordinates the run now: it took the run over (the lease here lapsed), or the run's state is gone. */
  private async takenOver(coordinated: CoordinatedRun): Promise<boolean> {
    if (!coordinated.fenced) {
      const renewed = await this.options.store.renew(coordinated.state.taskId, coordinated.state.epoch).catch(() => null);
      if (renewed === undefined) coordinated.fenced = true;
    }
    return coordinated.fenced;
  }

  /**
   * A run another scheduler took over while this one started it (this one stalled long enough to
   * lose the run's lease, and the other resumed the run): this one stops coordinating it, records
   * nothing more, and answers with the run as it goes on there.
   */
  private async wentOn(
    run: PreparedRun,
    coordinated: CoordinatedRun,
    created: Run | undefined,
    settle: () => void,
    what: string,
    err?: unknown,
  ): Promise<RunTaskResponse> {
    settle();
    await this.letGo(coordinated, what, err);
    return this.answerTakenOver(run, created);
  }

  /** Stops coordinating a run another scheduler took over, recording nothing, and says why in the log. */
  private async letGo(coordinated: CoordinatedRun, what: string, err?: unknown): Promise<void> {
    this.options.tracker.forget(coordinated.tracked);
    await this.options.coordinator.finish(coordinated);
    this.options.log.warn(
      { taskId: coordinated.state.taskId, err: err === undefined ? undefined : errorText(err) },
      `${what} after another scheduler took the run over; it goes on there`,
    );
  }

  /** RunTask's answer for a run another scheduler took over while this one started it: the run as it goes on there. */
  private async answerTakenOver(run: PreparedRun, created: Run | undefined): Promise<RunTaskResponse> {
    if (run.request.background) return { taskId: run.taskId, run: created, results: [], stillRunning: 0 };
    await waitForFinalRun(this.options.results, run.taskId, run.request.waitMs);
    return this.currentStatus(run.taskId);
  }

  /**
   * The policy's `run` check (docs/security.md): PERMISSION_DENIED naming the rule, with a
   * `denied` audit line. The selected nodes are loaded from the index only when a rule with
   * `nodes` could decide.
   */
  private async authorize(run: PreparedRun, caller: string): Promise<void> {
    const request = { caller, action: 'run' as const, task: run.task, environment: run.request.environment };
    const nodes = this.access.needsNodes(request) ? await this.options.index.load([...run.nodes, ...run.offline]) : undefined;
    this.access.authorize(
      { ...request, nodes },
      { filter: filterForAudit(run.request.filter), nodes: run.nodes.length + run.offline.length, input_keys: inputKeys(run.request.inputJson) },
    );
  }

  /** The `run` audit line: who ran what where, on how many nodes, with sensitive input redacted. */
  private auditLine(run: PreparedRun): AuditRecord {
    const { request } = run;
    return {
      event: 'run',
      caller: run.caller,
      task: run.task,
      environment: request.environment,
      filter: filterForAudit(request.filter),
      nodes: run.nodes.length + run.offline.length,
      offline: run.offline.length,
      task_id: run.taskId,
      batch: request.batch
        ? request.batch.size !== undefined
          ? { size: request.batch.size, sleep_s: request.batch.sleepMs / 1000 }
          : { percent: request.batch.percent, sleep_s: request.batch.sleepMs / 1000 }
        : null,
      background: request.background,
      noop: request.noop,
      run_as: request.runAs || null,
      request_id: request.requestId || null,
      input: auditInput(run.taskDef, run.input.redactedJson),
    };
  }

  /** Everything before the run exists: the task, its input, the executable and the nodes; `reader` is who `bolt_task()` terms read for. */
  private async prepare(request: ResolvedRunRequest, reader: string | undefined): Promise<PreparedRun> {
    const { metadata } = this.options;
    // Discovery reads only the index (and the results of runs a filter names), never the task:
    // it runs while the metadata service answers, and its outcome is looked at only once the
    // task and its input passed, so a request's errors come in the same order as in series.
    // No filter selects every online node, as `mco tasks run` without filters does.
    const discovered = inSpan('baton.discover', {}, async (span) => {
      const matched = await runDiscovery(this.options.index, request.query, {
        listOffline: true,
        runResults: resultsServiceSource(this.options.results, { caller: reader }),
      });
      span.setAttributes({ 'baton.online_matches': matched.online.length, 'baton.offline_matches': matched.offlineCount });
      return matched;
    });
    discovered.catch(() => undefined); // awaited below, unless the task or its input is refused first
    // NOT_FOUND (unknown task) and FAILED_PRECONDITION (a task that fails to load) pass through.
    const { task } = await unary(metadata, metadata.getTask, { environment: request.environment, task: request.task });
    if (!task) throw new Error(`metadata service answered GetTask ${request.task} without a task`);
    const input = validateTaskInput(task, request.inputJson);
    if (input.violations.length > 0) {
      const lines = input.violations.map((v) => v.description).join('; ');
      const parameters = [...new Set(input.violations.map((v) => v.field))].join(',');
      throw new InvalidArgumentError(`invalid input for task ${task.name}: ${lines}`, input.violations, 'INVALID_TASK_INPUT', {
        task: task.name,
        environment: request.environment,
        parameters,
      });
    }
    if (request.noop && !task.supportsNoop) throw new FailedPreconditionError('NOOP_NOT_SUPPORTED', `task ${task.name} does not support noop`);
    const executable = chooseExecutable(task);
    const found = await discovered;
    if (found.online.length === 0) {
      // Zero matches is an error, not a silent no-op: a typo in a filter must not look like success.
      const message =
        found.offlineCount > 0 ? `no online nodes matched the filter (${found.offlineCount} matched but are offline)` : 'no nodes matched the filter';
      throw new FailedPreconditionError('NO_NODES_MATCHED', message);
    }
    return {
      request,
      taskId: newTaskId(),
      task: task.name,
      taskDef: task,
      caller: request.caller,
      input,
      executable,
      nodes: found.online,
      offline: found.offline,
    };
  }

  /**
   * The answer to a RunTask whose request id started run `taskId` before: nothing starts; in
   * background the run as stored now, in the foreground the run after waiting for it as the
   * first call would.
   */
  private async answerRepeat(taskId: string, request: ResolvedRunRequest, onStarted?: (started: RunStartedNote) => void): Promise<RunTaskResponse> {
    const { results, tracker } = this.options;
    // The first call took the id just before creating the run: give the creation a moment.
    let appeared: Run | undefined;
    const deadline = Date.now() + DUPLICATE_RUN_APPEAR_MS;
    for (;;) {
      try {
        appeared = (await unary(results, results.getRunStatus, { taskId }, { metadata: onBehalfOf(ON_BEHALF_OF_SELF) })).run;
        break;
      } catch (err) {
        if (!isServiceError(err) || err.code !== grpcStatus.NOT_FOUND || Date.now() > deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    onStarted?.({ taskId, run: appeared, nodes: appeared?.nodes.length ?? 0, repeated: true });
    if (request.background) return { taskId, run: appeared, results: [], stillRunning: 0 };
    const tracked = tracker.get(taskId);
    if (tracked) await tracked.waitUntilDone(request.waitMs);
    else await waitForFinalRun(results, taskId, request.waitMs);
    return this.currentStatus(taskId);
  }

  /** From the created run to the response. Calls `settle` once the run's outcome is in the nodes' or the results' hands. */
  private async dispatch(
    run: PreparedRun,
    coordinated: CoordinatedRun,
    created: Run | undefined,
    settle: () => void,
    receivedMs: number,
  ): Promise<RunTaskResponse> {
    const { coordinator, log } = this.options;
    const tracked = coordinated.tracked;
    if (tracked.cancelled) return this.cancelled(run, coordinated, created, settle);
    // The downloads go out while the run is moved to DOWNLOADING, not one round trip to the
    // results service later: a download only fills an agent's file cache, so one for a run
    // cancelled meanwhile is harmless. The gate's outcome is acted on only once the run is
    // DOWNLOADING, so the FAILED or CANCELLED it may lead to always comes after.
    const downloading = this.advance(tracked, RunState.RUN_STATE_DOWNLOADING);
    // The agents' download spans are children of the gate's, through the command's trace context.
    const gate = inSpan('baton.download_gate', { 'baton.task_id': run.taskId, 'baton.nodes': run.nodes.length }, async (span) => {
      const failed = await coordinator.gate(coordinated, injectTraceContext(span));
      span.setAttribute('baton.failed_nodes', failed.length);
      return failed;
    });
    // Handled here, as the gate may fail while the state change is awaited (and its failure
    // does not matter when the state change fails or finds the run cancelled); awaited below.
    gate.catch(() => undefined);
    if (!(await downloading)) return this.cancelled(run, coordinated, created, settle);
    const failures = await gate;
    if (tracked.cancelled) return this.cancelled(run, coordinated, created, settle);
    if (failures.length > 0) {
      await this.gateClosed(run, coordinated, failures, settle);
      return this.answerTakenOver(run, created);
    }
    const running = await this.afterGate(coordinated);
    if (!running) return this.cancelled(run, coordinated, created, settle);
    const sent = await coordinator.sendBatch(coordinated, 0);
    if (sent === 'cancelled') return this.cancelled(run, coordinated, created, settle);
    // Refused at its epoch: the run command goes out from the scheduler that took the run over.
    if (sent === 'fenced') return this.wentOn(run, coordinated, created, settle, 'the run command was refused here');
    metrics.dispatchLatency.observe((Date.now() - receivedMs) / 1000);
    settle(); // from here on the nodes own the run's outcome
    log.info({ taskId: run.taskId, nodes: coordinated.batch(0).length, batches: coordinated.state.batches }, 'run command sent');
    // Neither a background return nor the end of a foreground wait stops the later batches.
    if (sent === 'ok') this.continueInBackground(coordinated, 0);
    if (run.request.background) return { taskId: run.taskId, run: running.run ?? created, results: [], stillRunning: 0 };

    await tracked.waitUntilDone(run.request.waitMs);
    return this.currentStatus(run.taskId);
  }

  /**
   * Once every node passed the gate: the nodes of later batches show as DOWNLOADED until their
   * turn (recorded before any run command goes out, so it never overwrites a RUNNING), and the
   * run becomes RUNNING; undefined when it was cancelled meanwhile.
   */
  async afterGate(coordinated: CoordinatedRun): Promise<{ run: Run | undefined } | undefined> {
    if (coordinated.state.batches > 1) {
      await this.record(
        coordinated.state.taskId,
        coordinated.plan.map((n) => NodeResult.fromPartial({ host: n, state: NodeState.NODE_STATE_DOWNLOADED, exitcode: -1 })),
      );
    }
    return this.advance(coordinated.tracked, RunState.RUN_STATE_RUNNING);
  }

  /**
   * The gate closed on `failures`: they are recorded, the run FAILED, its state removed; throws
   * DOWNLOAD_FAILED. Resolves, recording nothing, when another scheduler took the run over
   * meanwhile: nodes that did not answer here may have answered it (its gate goes on), and only
   * the run's coordinator may fail the run.
   */
  async gateClosed(run: RunIdentity, coordinated: CoordinatedRun, failures: DownloadFailure[], settle: () => void = () => undefined): Promise<void> {
    if (await this.takenOver(coordinated)) {
      settle();
      return this.letGo(coordinated, 'the download gate closed here');
    }
    const reason = gateFailureReason(failures);
    await this.record(
      run.taskId,
      failures.map((f) => unstartedResult(run, f.node, f.state, f.detail)),
    );
    await this.setState(run.taskId, coordinated.tracked.nodeCount, RunState.RUN_STATE_FAILED, reason);
    settle();
    await this.options.coordinator.finish(coordinated);
    this.options.log.info({ taskId: run.taskId, failed: failures.length }, 'download gate closed');
    throw new FailedPreconditionError('DOWNLOAD_FAILED', reason, { task_id: run.taskId });
  }

  /** Runs the batch loop from batch `k` on without anyone waiting for it; errors are logged. */
  continueInBackground(coordinated: CoordinatedRun, k: number, sleepUntilMs?: number): void {
    const { coordinator, log } = this.options;
    coordinator.continueFrom(coordinated, k, sleepUntilMs).catch(async (err: unknown) => {
      log.error(
        { taskId: coordinated.state.taskId, err: errorText(err) },
        'the batch loop stopped on an error; the run is handed to the next scan for runs without a coordinator',
      );
      await coordinator.abandon(coordinated);
    });
  }

  /**
   * The answer once CancelRun stopped the run before its run command went out. CancelRun has
   * recorded the nodes and the run's state already; recording again changes nothing (final
   * results and states stay) but covers a CancelRun that failed half-way.
   */
  private async cancelled(run: PreparedRun, coordinated: CoordinatedRun, created: Run | undefined, settle: () => void): Promise<RunTaskResponse> {
    const tracked = coordinated.tracked;
    const unstarted = run.nodes.filter((n) => !tracked.isFinal(n) && !tracked.dispatched.has(n));
    if (unstarted.length > 0) {
      await this.record(
        run.taskId,
        unstarted.map((n) => unstartedResult(run, n, NodeState.NODE_STATE_CANCELLED, CANCELLED_BEFORE_START)),
      );
      for (const n of unstarted) this.options.tracker.markFinal(run.taskId, n);
    }
    const stored = await this.setState(run.taskId, tracked.nodeCount, RunState.RUN_STATE_CANCELLED, 'cancelled').catch(() => undefined);
    settle();
    await this.options.coordinator.finish(coordinated);
    return run.request.background ? { taskId: run.taskId, run: stored ?? created, results: [], stillRunning: 0 } : this.currentStatus(run.taskId);
  }

  /**
   * Moves the run to `state` unless it was cancelled; undefined when cancelled (before, or by a
   * CancelRun whose CANCELLED got in first and made this change fail).
   */
  async advance(tracked: TrackedRun, state: RunState): Promise<{ run: Run | undefined } | undefined> {
    if (tracked.cancelled) return undefined;
    try {
      return { run: await this.setState(tracked.taskId, tracked.nodeCount, state) };
    } catch (err) {
      if (tracked.cancelled) return undefined;
      throw err;
    }
  }

  /** The response of a foreground run: the run, its node results and how many nodes are not final, as the results service has them now. */
  private async currentStatus(taskId: string): Promise<RunTaskResponse> {
    const status = await unary(this.options.results, this.options.results.getRunStatus, { taskId }, { metadata: onBehalfOf(ON_BEHALF_OF_SELF) });
    return { taskId, run: status.run, results: status.items, stillRunning: status.stats?.running ?? 0 };
  }

  private record(taskId: string, results: NodeResult[]): Promise<void> {
    return recordResults(this.options.results, taskId, results);
  }

  /**
   * Moves the run of `nodes` nodes to `state` and returns it as stored; tried again
   * (STATE_CHANGE_ATTEMPTS in all) when the results service does not answer in time or is
   * unavailable.
   */
  private async setState(taskId: string, nodes: number, state: RunState, reason = ''): Promise<Run | undefined> {
    const { results, log } = this.options;
    for (let attempt = 1; ; attempt++) {
      try {
        const { run } = await unary(results, results.updateRunState, { taskId, state, reason }, { deadlineMs: runRecordDeadlineMs(nodes) });
        return run;
      } catch (err) {
        if (attempt >= STATE_CHANGE_ATTEMPTS || !isServiceError(err) || !RETRIED_STATE_CHANGE_CODES.has(err.code)) throw err;
        log.warn({ taskId, state: RunState[state], attempt, err: errorText(err) }, 'the results service did not take a run state change; trying again');
        await new Promise((resolve) => setTimeout(resolve, STATE_CHANGE_RETRY_MS));
      }
    }
  }

  /** Marks a run of `nodes` nodes FAILED after an error; a failure to do so is logged, the original error matters more. */
  private async failQuietly(taskId: string, nodes: number, reason: string): Promise<void> {
    try {
      await this.setState(taskId, nodes, RunState.RUN_STATE_FAILED, reason);
    } catch (err) {
      this.options.log.error({ taskId, reason, err: errorText(err) }, 'could not mark the run FAILED');
    }
  }
}
