import { randomUUID } from 'node:crypto';
import { status as grpcStatus } from '@grpc/grpc-js';
import { trace } from '@opentelemetry/api';
import type { MetadataServiceClient } from '../../gen/baton/v1/metadata_service';
import type { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { NodeResult, NodeState, RunState, type Run } from '../../gen/baton/v1/run';
import type { RunTaskRequest, RunTaskResponse } from '../../gen/baton/v1/scheduler_service';
import type { RunCommand } from '../../gen/baton/v1/agent_gateway_service';
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
import { inSpan, injectTraceContext, tracer } from '../../lib/tracing';
import { planBatches } from './batch-plan';
import { resultsServiceSource, runDiscovery } from './discovery-plan';
import { errorText } from './error-text';
import type { Dispatcher } from './dispatcher';
import { DEFAULT_DOWNLOAD_TIMEOUT_S, gateFailureReason } from './download-gate';
import { chooseExecutable, type ChosenExecutable } from './executable';
import type { NodeIndex } from './node-index';
import { unstartedResult, type RunIdentity } from './node-results';
import { CANCELLED_BEFORE_START } from './run-cancel';
import { resolveRunRequest, type ResolvedRunRequest } from './run-request';
import type { RunRequests } from './run-requests';
import { TRACKED_RUN_TTL_MS, type RunTracker, type TrackedRun } from './run-tracker';
import { waitForFinalRun } from './run-watch';

/** A request's filter as given, for audit lines (the proto's JSON form); null for none. */
export function filterForAudit(filter: Filter | undefined): unknown {
  return filter ? Filter.toJSON(filter) : null;
}

/** What the orchestrator works with. */
export interface RunOrchestratorOptions {
  metadata: MetadataServiceClient;
  results: ResultsServiceClient;
  index: NodeIndex;
  /** How commands reach the agents (dispatcher.ts): this scheduler's sessions, or every replica's. */
  dispatcher: Dispatcher;
  tracker: RunTracker;
  /** RunTask request ids already used (idempotency). */
  requests: RunRequests;
  log: Logger;
  /** Seconds every node gets to download and verify the files; default DEFAULT_DOWNLOAD_TIMEOUT_S. */
  downloadTimeoutS?: number;
  /** Longest a later batch waits for the previous batch to finish, in ms; default BATCH_WAIT_LIMIT_MS. */
  batchWaitLimitMs?: number;
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
}

/**
 * Longest a batch waits for every node of the previous batch to finish before the run gives up
 * on its later batches, in ms (the tracker's TTL: one hour). A node that never reports (its
 * agent gone for good) must not hold the scheduler's batch loop forever.
 */
export const BATCH_WAIT_LIMIT_MS = TRACKED_RUN_TTL_MS;

/** Longest a duplicate RunTask waits for the first request's run to appear in the results service, in ms. */
export const DUPLICATE_RUN_APPEAR_MS = 10_000;

/** Everything a run needs once it is validated and has nodes. */
interface PreparedRun extends RunIdentity {
  request: ResolvedRunRequest;
  taskDef: Task;
  input: ValidatedTaskInput;
  executable: ChosenExecutable;
  /** Online matches: the nodes the run is sent to. */
  nodes: string[];
  /** Matches that are offline: part of the run, recorded as NO_RESPONSE at once (issue 5 point 4). */
  offline: string[];
}

/**
 * RunTask: validate → fetch the task → validate the input → discover → take the request id →
 * create the run → distribute the files and gate on every node holding them → run, batch by
 * batch → wait (foreground) or return at once (background).
 *
 * Batches are rolling (issue 6 point 2): the next batch starts once every node of the previous
 * batch has a final result, then batch_sleep_s later. Choria's `--batch` on `run_and_wait`
 * behaves alike only because each node's reply comes when its task ends or after 58 s
 * (choria-tasks.md §1.3), so a long task lets the next batch start while it still runs; with
 * `--background` (`run_no_wait`) batches only pace the spawning. Here a batch never starts
 * while the previous one runs, in foreground and background alike, which is what batches are
 * for (updates and reboots, mcollective-choria#487).
 */
export class RunOrchestrator {
  private readonly downloadTimeoutMs: number;
  private readonly batchWaitLimitMs: number;
  private readonly access: AccessControl;

  constructor(private readonly options: RunOrchestratorOptions) {
    this.access = options.access ?? AccessControl.none(options.log);
    this.downloadTimeoutMs = (options.downloadTimeoutS ?? DEFAULT_DOWNLOAD_TIMEOUT_S) * 1000;
    this.batchWaitLimitMs = options.batchWaitLimitMs ?? BATCH_WAIT_LIMIT_MS;
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
    // The RunTask server span (gRPC instrumentation) is the run's span on the scheduler.
    trace.getActiveSpan()?.setAttributes({
      'baton.task': run.task,
      'baton.task_id': run.taskId,
      'baton.environment': run.request.environment,
      'baton.nodes': run.nodes.length + run.offline.length,
      'baton.caller': run.caller,
    });
    const { results, tracker, requests, log } = this.options;
    const { requestId } = run.request;
    // Taken only now: a request refused for bad input or no nodes may be retried with its id.
    if (requestId !== '') {
      const first = await requests.claim(run.caller, requestId, run.taskId);
      if (first !== undefined) {
        log.info({ taskId: first, requestId, caller: run.caller }, 'repeated request id; answering with the first run');
        return this.answerRepeat(first, run.request);
      }
    }
    let created: Run | undefined;
    try {
      // Fail closed: a run whose audit line cannot be written is not created (UNAVAILABLE).
      this.access.audit(this.auditLine(run));
      created = (
        await unary(results, results.createRun, {
          run: {
            taskId: run.taskId,
            task: run.task,
            environment: run.request.environment,
            caller: run.caller,
            state: RunState.RUN_STATE_PENDING,
            nodes: [...run.nodes, ...run.offline].sort(),
            filter: run.request.filter,
            inputJson: run.input.redactedJson,
            createTime: new Date(),
            endTime: undefined,
            error: '',
            noop: run.request.noop,
            requestId,
          },
        })
      ).run;
    } catch (err) {
      if (requestId !== '') await requests.release(run.caller, requestId, run.taskId).catch(() => undefined);
      if (!(err instanceof UnavailableError)) this.access.auditBestEffort({ event: 'run_failed', caller: run.caller, task_id: run.taskId, reason: errorText(err) });
      throw err;
    }
    log.info({ taskId: run.taskId, task: run.task, nodes: run.nodes.length, caller: run.caller, requestId: requestId || undefined }, 'run created');
    const tracked = tracker.track(run.taskId, [...run.nodes, ...run.offline]);
    let settled = false;
    try {
      if (run.offline.length > 0) {
        // Choria drops offline matches silently; here they show in the run as not responding.
        await this.record(run.taskId, run.offline.map((n) => unstartedResult(run, n, NodeState.NODE_STATE_NO_RESPONSE, 'no response: the node was offline when the run started')));
        for (const n of run.offline) tracked.markFinal(n);
      }
      return await this.dispatch(run, tracked, created, () => (settled = true), receivedMs);
    } catch (err) {
      // Once the run command went out the nodes own the outcome (and later batches go on).
      if (!settled) {
        tracker.forget(tracked);
        await this.failQuietly(run.taskId, `the scheduler could not complete the run: ${errorText(err)}`);
      }
      throw err;
    }
  }

  /**
   * The policy's `run` check (issue 9 point 3): PERMISSION_DENIED naming the rule, with a
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
      batch: request.batch ? (request.batch.size !== undefined ? { size: request.batch.size, sleep_s: request.batch.sleepMs / 1000 } : { percent: request.batch.percent, sleep_s: request.batch.sleepMs / 1000 }) : null,
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
    // No filter selects every online node, as `mco tasks run` without filters does.
    const found = await inSpan('baton.discover', {}, async (span) => {
      const matched = await runDiscovery(this.options.index, request.query, { listOffline: true, runResults: resultsServiceSource(this.options.results, { caller: reader }) });
      span.setAttributes({ 'baton.online_matches': matched.online.length, 'baton.offline_matches': matched.offlineCount });
      return matched;
    });
    if (found.online.length === 0) {
      // Zero matches is an error, not a silent no-op (issue 6 point 1).
      const message = found.offlineCount > 0 ? `no online nodes matched the filter (${found.offlineCount} matched but are offline)` : 'no nodes matched the filter';
      throw new FailedPreconditionError('NO_NODES_MATCHED', message);
    }
    return { request, taskId: newTaskId(), task: task.name, taskDef: task, caller: request.caller, input, executable, nodes: found.online, offline: found.offline };
  }

  /**
   * The answer to a RunTask whose request id started run `taskId` before: nothing starts; in
   * background the run as stored now, in the foreground the run after waiting for it as the
   * first call would.
   */
  private async answerRepeat(taskId: string, request: ResolvedRunRequest): Promise<RunTaskResponse> {
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
    if (request.background) return { taskId, run: appeared, results: [], stillRunning: 0 };
    const tracked = tracker.get(taskId);
    if (tracked) await tracked.waitUntilDone(request.waitMs);
    else await waitForFinalRun(results, taskId, request.waitMs);
    return this.currentStatus(taskId);
  }

  /** From the created run to the response. Calls `settle` once the run's outcome is in the nodes' or the results' hands. */
  private async dispatch(run: PreparedRun, tracked: TrackedRun, created: Run | undefined, settle: () => void, receivedMs: number): Promise<RunTaskResponse> {
    const { dispatcher, log } = this.options;
    if (!(await this.advance(tracked, RunState.RUN_STATE_DOWNLOADING))) return this.cancelled(run, tracked, created, settle);
    // The agents' download spans are children of the gate's, through the command's trace context.
    const failures = await inSpan('baton.download_gate', { 'baton.task_id': run.taskId, 'baton.nodes': run.nodes.length }, async (span) => {
      const failed = await dispatcher.download(
        run.nodes,
        { requestId: randomUUID(), taskId: run.taskId, task: run.task, environment: run.request.environment, files: run.taskDef.files },
        this.downloadTimeoutMs,
        injectTraceContext(span),
      );
      span.setAttribute('baton.failed_nodes', failed.length);
      return failed;
    });
    if (tracked.cancelled) return this.cancelled(run, tracked, created, settle);
    if (failures.length > 0) {
      const reason = gateFailureReason(failures);
      await this.record(run.taskId, failures.map((f) => unstartedResult(run, f.node, f.state, f.detail)));
      await this.setState(run.taskId, RunState.RUN_STATE_FAILED, reason);
      settle();
      log.info({ taskId: run.taskId, failed: failures.length }, 'download gate closed');
      throw new FailedPreconditionError('DOWNLOAD_FAILED', reason, { task_id: run.taskId });
    }

    const batches = planBatches(run.nodes, run.request.batch);
    if (batches.length > 1) {
      // Every node passed the gate; those of later batches show as DOWNLOADED until their turn.
      // Recorded before any run command goes out, so it never overwrites a RUNNING.
      await this.record(run.taskId, run.nodes.map((n) => NodeResult.fromPartial({ host: n, state: NodeState.NODE_STATE_DOWNLOADED, exitcode: -1 })));
    }
    const running = await this.advance(tracked, RunState.RUN_STATE_RUNNING);
    if (!running) return this.cancelled(run, tracked, created, settle);
    await this.sendBatch(run, tracked, batches[0]);
    metrics.dispatchLatency.observe((Date.now() - receivedMs) / 1000);
    settle(); // from here on the nodes own the run's outcome
    log.info({ taskId: run.taskId, nodes: batches[0].length, batches: batches.length }, 'run command sent');
    if (batches.length > 1) {
      // Neither a background return nor the end of a foreground wait stops the later batches.
      this.sendLaterBatches(run, tracked, batches).catch((err: unknown) =>
        log.error({ taskId: run.taskId, err: errorText(err) }, 'later batches stopped by an error; their nodes stay DOWNLOADED'),
      );
    }
    if (run.request.background) return { taskId: run.taskId, run: running.run ?? created, results: [], stillRunning: 0 };

    await tracked.waitUntilDone(run.request.waitMs);
    return this.currentStatus(run.taskId);
  }

  /** Sends the run command to one batch; nodes that left meanwhile are recorded NO_RESPONSE. Never rejects. */
  private async sendBatch(run: PreparedRun, tracked: TrackedRun, nodes: string[]): Promise<void> {
    // Synchronous from the cancel check to the dispatcher's call: CancelRun sees either none or
    // all of this batch as dispatched.
    if (tracked.cancelled) return;
    for (const node of nodes) tracked.dispatched.add(node);
    // One span per batch; each node's execution span on its agent is a child of it, through the
    // trace context carried by the run command (the stream itself outlives any run).
    const span = tracer.startSpan('baton.dispatch', { attributes: { 'baton.task_id': run.taskId, 'baton.nodes': nodes.length } });
    const command: RunCommand = {
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
    let unreached: string[];
    try {
      unreached = await this.options.dispatcher.run(nodes, command, injectTraceContext(span));
    } catch (err) {
      // Where the command went is unknown: the nodes keep their state, and a result that comes
      // is recorded as usual (agents never run a task id twice, so a resend is safe).
      this.options.log.warn({ taskId: run.taskId, nodes: nodes.length, err: errorText(err) }, 'the run command could not be handed to every scheduler');
      unreached = [];
    }
    const lost = unreached.map((node) => unstartedResult(run, node, NodeState.NODE_STATE_NO_RESPONSE, 'the node disconnected before the run command could be sent'));
    span.setAttribute('baton.lost_nodes', lost.length);
    span.end();
    if (lost.length === 0) return;
    try {
      await this.record(run.taskId, lost);
    } catch (err) {
      // Never thrown: the commands went out, so the run must neither be failed as a whole nor
      // its later batches stopped by a results service that did not answer this once.
      this.options.log.warn({ taskId: run.taskId, nodes: lost.length, err: errorText(err) }, 'could not record nodes that left before their run command');
    }
    for (const r of lost) this.options.tracker.markFinal(run.taskId, r.host);
  }

  /** Batches 2..n: each once the previous one is final and the batch sleep passed; stops on cancel. */
  private async sendLaterBatches(run: PreparedRun, tracked: TrackedRun, batches: string[][]): Promise<void> {
    const { tracker, log } = this.options;
    const sleepMs = run.request.batch?.sleepMs ?? 0;
    for (let i = 1; i < batches.length; i++) {
      const finished = await tracked.waitForNodes(batches[i - 1], this.batchWaitLimitMs);
      if (tracked.cancelled) return; // CancelRun recorded the nodes never started
      if (!finished) {
        const waiting = batches.slice(i).flat();
        const why = `not started: batch ${i} of ${batches.length} did not finish within ${Math.round(this.batchWaitLimitMs / 1000)} s`;
        log.warn({ taskId: run.taskId, batch: i, notStarted: waiting.length }, 'a batch did not finish in time; later batches abandoned');
        await this.record(run.taskId, waiting.map((n) => unstartedResult(run, n, NodeState.NODE_STATE_FAILED, why)));
        for (const n of waiting) tracker.markFinal(run.taskId, n);
        return;
      }
      if (await tracked.pauseUnlessCancelled(sleepMs)) return;
      tracker.touch(tracked);
      await this.sendBatch(run, tracked, batches[i]);
      log.info({ taskId: run.taskId, batch: i + 1, of: batches.length, nodes: batches[i].length }, 'run command sent to the next batch');
    }
  }

  /**
   * The answer once CancelRun stopped the run before its run command went out. CancelRun has
   * recorded the nodes and the run's state already; recording again changes nothing (final
   * results and states stay) but covers a CancelRun that failed half-way.
   */
  private async cancelled(run: PreparedRun, tracked: TrackedRun, created: Run | undefined, settle: () => void): Promise<RunTaskResponse> {
    const unstarted = run.nodes.filter((n) => !tracked.isFinal(n));
    if (unstarted.length > 0) {
      await this.record(run.taskId, unstarted.map((n) => unstartedResult(run, n, NodeState.NODE_STATE_CANCELLED, CANCELLED_BEFORE_START)));
      for (const n of unstarted) this.options.tracker.markFinal(run.taskId, n);
    }
    const stored = await this.setState(run.taskId, RunState.RUN_STATE_CANCELLED, 'cancelled').catch(() => undefined);
    settle();
    return run.request.background ? { taskId: run.taskId, run: stored ?? created, results: [], stillRunning: 0 } : this.currentStatus(run.taskId);
  }

  /**
   * Moves the run to `state` unless it was cancelled; undefined when cancelled (before, or by a
   * CancelRun whose CANCELLED got in first and made this change fail).
   */
  private async advance(tracked: TrackedRun, state: RunState): Promise<{ run: Run | undefined } | undefined> {
    if (tracked.cancelled) return undefined;
    try {
      return { run: await this.setState(tracked.taskId, state) };
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

  private async record(taskId: string, results: NodeResult[]): Promise<void> {
    await unary(this.options.results, this.options.results.recordNodeResults, { taskId, results });
  }

  /** Moves the run to `state` and returns it as stored. */
  private async setState(taskId: string, state: RunState, reason = ''): Promise<Run | undefined> {
    const { run } = await unary(this.options.results, this.options.results.updateRunState, { taskId, state, reason });
    return run;
  }

  /** Marks a run FAILED after an error; a failure to do so is logged, the original error matters more. */
  private async failQuietly(taskId: string, reason: string): Promise<void> {
    try {
      await this.setState(taskId, RunState.RUN_STATE_FAILED, reason);
    } catch (err) {
      this.options.log.error({ taskId, reason, err: errorText(err) }, 'could not mark the run FAILED');
    }
  }
}
