import { randomUUID } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import type { MetadataServiceClient } from '../../gen/baton/v1/metadata_service';
import type { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { NodeState, RunState, type NodeResult, type Run } from '../../gen/baton/v1/run';
import type { RunTaskRequest, RunTaskResponse } from '../../gen/baton/v1/scheduler_service';
import type { Task } from '../../gen/baton/v1/task';
import { FailedPreconditionError, InvalidArgumentError } from '../../lib/errors';
import { unary } from '../../lib/grpc-client';
import type { Logger } from '../../lib/logger';
import { newTaskId } from '../../lib/task-id';
import { sensitiveParameters, validateTaskInput, type ValidatedTaskInput } from '../../lib/task-input';
import type { AgentRegistry } from './agent-registry';
import { resultsServiceSource, runDiscovery } from './discovery-plan';
import { errorText } from './error-text';
import { DEFAULT_DOWNLOAD_TIMEOUT_S, distributeFiles, gateFailureReason } from './download-gate';
import { chooseExecutable, type ChosenExecutable } from './executable';
import type { NodeIndex } from './node-index';
import { unstartedResult, type RunIdentity } from './node-results';
import { resolveRunRequest, type ResolvedRunRequest } from './run-request';
import type { RunTracker, TrackedRun } from './run-tracker';

/** What the orchestrator works with. */
export interface RunOrchestratorOptions {
  metadata: MetadataServiceClient;
  results: ResultsServiceClient;
  index: NodeIndex;
  registry: AgentRegistry;
  tracker: RunTracker;
  log: Logger;
  /** Seconds every node gets to download and verify the files; default DEFAULT_DOWNLOAD_TIMEOUT_S. */
  downloadTimeoutS?: number;
}

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
 * RunTask: validate → fetch the task → validate the input → discover → create the run →
 * distribute the files and gate on every node holding them → run → wait (foreground) or
 * return at once (background).
 */
export class RunOrchestrator {
  private readonly downloadTimeoutMs: number;

  constructor(private readonly options: RunOrchestratorOptions) {
    this.downloadTimeoutMs = (options.downloadTimeoutS ?? DEFAULT_DOWNLOAD_TIMEOUT_S) * 1000;
  }

  /** Runs a task as RunTask describes; `metadata` is the call's request metadata (caller id). */
  async runTask(req: RunTaskRequest, metadata: Metadata): Promise<RunTaskResponse> {
    const run = await this.prepare(resolveRunRequest(req, metadata));
    const { results, tracker, log } = this.options;
    const created = await unary(results, results.createRun, {
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
        requestId: run.request.requestId,
      },
    });
    log.info({ taskId: run.taskId, task: run.task, nodes: run.nodes.length, caller: run.caller, requestId: run.request.requestId || undefined }, 'run created');
    const tracked = tracker.track(run.taskId, [...run.nodes, ...run.offline]);
    let settled = false;
    try {
      if (run.offline.length > 0) {
        // Choria drops offline matches silently; here they show in the run as not responding.
        await this.record(run.taskId, run.offline.map((n) => unstartedResult(run, n, NodeState.NODE_STATE_NO_RESPONSE, 'no response: the node was offline when the run started')));
        for (const n of run.offline) tracked.markFinal(n);
      }
      return await this.dispatch(run, tracked, created.run, () => (settled = true));
    } catch (err) {
      tracker.forget(tracked);
      if (!settled) await this.failQuietly(run.taskId, `the scheduler could not complete the run: ${errorText(err)}`);
      throw err;
    }
  }

  /** Everything before the run exists: the task, its input, the executable and the nodes. */
  private async prepare(request: ResolvedRunRequest): Promise<PreparedRun> {
    const { metadata } = this.options;
    // NOT_FOUND (unknown task) and FAILED_PRECONDITION (a task that fails to load) pass through.
    const { task } = await unary(metadata, metadata.getTask, { environment: request.environment, task: request.task });
    if (!task) throw new Error(`metadata service answered GetTask ${request.task} without a task`);
    const input = validateTaskInput(task, request.inputJson);
    if (input.violations.length > 0) {
      const lines = input.violations.map((v) => v.description).join('; ');
      throw new InvalidArgumentError(`invalid input for task ${task.name}: ${lines}`, input.violations, 'INVALID_TASK_INPUT');
    }
    if (request.noop && !task.supportsNoop) throw new FailedPreconditionError('NOOP_NOT_SUPPORTED', `task ${task.name} does not support noop`);
    const executable = chooseExecutable(task);
    const found = await runDiscovery(this.options.index, request.filter, { listOffline: true, runResults: resultsServiceSource(this.options.results) });
    if (found.online.length === 0) {
      const message = found.offlineCount > 0 ? `no online nodes matched the filter (${found.offlineCount} matched but are offline)` : 'no nodes matched the filter';
      throw new FailedPreconditionError('NO_NODES_MATCHED', message);
    }
    return { request, taskId: newTaskId(), task: task.name, taskDef: task, caller: request.caller, input, executable, nodes: found.online, offline: found.offline };
  }

  /** From the created run to the response. Calls `settle` once the run's final state is recorded. */
  private async dispatch(run: PreparedRun, tracked: TrackedRun, created: Run | undefined, settle: () => void): Promise<RunTaskResponse> {
    const { registry, log } = this.options;
    await this.setState(run.taskId, RunState.RUN_STATE_DOWNLOADING);
    const failures = await distributeFiles(
      registry,
      run.nodes,
      { requestId: randomUUID(), taskId: run.taskId, task: run.task, environment: run.request.environment, files: run.taskDef.files },
      this.downloadTimeoutMs,
    );
    if (failures.length > 0) {
      const reason = gateFailureReason(failures);
      await this.record(run.taskId, failures.map((f) => unstartedResult(run, f.node, f.state, f.detail)));
      await this.setState(run.taskId, RunState.RUN_STATE_FAILED, reason);
      settle();
      log.info({ taskId: run.taskId, failed: failures.length }, 'download gate closed');
      throw new FailedPreconditionError('DOWNLOAD_FAILED', reason, { task_id: run.taskId });
    }

    if (tracked.cancelled) {
      await this.record(run.taskId, run.nodes.map((n) => unstartedResult(run, n, NodeState.NODE_STATE_CANCELLED, 'cancelled before the task started')));
      const cancelled = await this.setState(run.taskId, RunState.RUN_STATE_CANCELLED, 'cancelled before the run command was sent');
      settle();
      return run.request.background ? { taskId: run.taskId, run: cancelled ?? created, results: [] } : this.currentStatus(run.taskId);
    }

    const running = await this.setState(run.taskId, RunState.RUN_STATE_RUNNING);
    const lost: NodeResult[] = [];
    for (const node of run.nodes) {
      const sent = registry.get(node)?.send({
        $case: 'run',
        value: {
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
        },
      });
      if (!sent) lost.push(unstartedResult(run, node, NodeState.NODE_STATE_NO_RESPONSE, 'the node disconnected before the run command could be sent'));
    }
    if (lost.length > 0) {
      await this.record(run.taskId, lost);
      for (const r of lost) tracked.markFinal(r.host);
    }
    settle(); // from here on the nodes own the run's outcome
    log.info({ taskId: run.taskId, sent: run.nodes.length - lost.length, lost: lost.length }, 'run command sent');
    if (run.request.background) return { taskId: run.taskId, run: running ?? created, results: [] };

    await tracked.waitUntilDone(run.request.waitMs);
    return this.currentStatus(run.taskId);
  }

  /** The response of a foreground run: the run and its node results as the results service has them now. */
  private async currentStatus(taskId: string): Promise<RunTaskResponse> {
    const status = await unary(this.options.results, this.options.results.getRunStatus, { taskId });
    return { taskId, run: status.run, results: status.items };
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
