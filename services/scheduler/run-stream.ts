import { status, type ClientReadableStream, type ServerWritableStream } from '@grpc/grpc-js';
import type { ResultsServiceClient, WatchRunEventsResponse } from '../../gen/baton/v1/results_service';
import { NodeState, RunState, type NodeResult } from '../../gen/baton/v1/run';
import { RunTaskRequest, type RunTaskResponse, type StartRunRequest, type StartRunResponse } from '../../gen/baton/v1/scheduler_service';
import { actingCaller, ON_BEHALF_OF_SELF } from '../../lib/access-control';
import { BatonError, UnavailableError } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import { countNodes, isFinalNodeState, isFinalRunState, type RunView } from '../../lib/run-states';
import type { RunOrchestrator, RunStartedNote } from './run-orchestrator';
import { follow } from './run-watch';

type StartRunCall = ServerWritableStream<StartRunRequest, StartRunResponse>;
type Update = NonNullable<StartRunResponse['update']>;

/**
 * Longest a node result waits before it is sent in a `progress` message, in ms: results that
 * arrive together (a batch of nodes finishing) go out in one message instead of one each.
 */
export const PROGRESS_COALESCE_MS = 100;

/**
 * Longest the `finished` message waits for the run's final events to be relayed as progress,
 * in ms. The run is final in the results service when RunTask's answer is made, but its event
 * log reaches this relay a moment later; `finished` holds every result either way.
 */
export const FINAL_EVENTS_GRACE_MS = 2_000;

/**
 * Relays one run's event log (the results service's WatchRunEvents with follow) as StartRun
 * `progress` messages: a message on every run state change, and node results that became
 * final, coalesced over PROGRESS_COALESCE_MS.
 */
class ProgressRelay {
  private readonly view: RunView;
  private readonly upstream: ClientReadableStream<WatchRunEventsResponse>;
  private pending: NodeResult[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Resolves once the upstream ended: after the run's final event, or on an error. */
  readonly ended: Promise<void>;

  constructor(
    results: ResultsServiceClient,
    started: RunStartedNote,
    caller: string,
    private readonly write: (update: Update) => void,
    log: Logger,
  ) {
    this.view = { state: RunState.RUN_STATE_UNSPECIFIED, nodes: new Map((started.run?.nodes ?? []).map((n) => [n, NodeState.NODE_STATE_PENDING])) };
    this.upstream = follow(results, started.taskId, '', caller);
    this.upstream.on('data', (m: WatchRunEventsResponse) => this.onEvent(m));
    this.ended = new Promise((resolve) => {
      this.upstream.on('end', resolve);
      // Progress is a courtesy: the stream's `finished` still carries every result.
      this.upstream.on('error', (err: Error) => {
        if (!this.stopped) log.debug({ taskId: started.taskId, err: err.message }, 'progress of a StartRun stream stopped');
        resolve();
      });
    });
  }

  private onEvent(m: WatchRunEventsResponse): void {
    const e = m.event?.event;
    if (e?.$case === 'runStateChanged') {
      this.view.state = e.value.state;
      this.flush();
    } else if (e?.$case === 'nodeResult') {
      this.view.nodes.set(e.value.host, e.value.state);
      if (isFinalNodeState(e.value.state)) this.pending.push(e.value);
      this.timer ??= setTimeout(() => this.flush(), PROGRESS_COALESCE_MS);
    }
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.stopped) return;
    const { downloaded, finished } = countNodes(this.view);
    this.write({ $case: 'progress', value: { state: this.view.state, nodes: this.view.nodes.size, downloaded, finished, results: this.pending.splice(0) } });
  }

  /** Sends what is pending, after waiting (at most `graceMs`) for the log's final event when the run is final. */
  async finish(runIsFinal: boolean, graceMs: number): Promise<void> {
    if (runIsFinal) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.ended, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
      clearTimeout(timer);
    }
    if (this.pending.length > 0) this.flush();
    this.stop();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    this.upstream.cancel();
  }
}

/**
 * The scheduler's StartRun streams: RunTask through the same orchestrator (so validation,
 * authorization, idempotency and errors are RunTask's), with the task id sent as soon as the
 * run exists, the run's progress relayed from its event log, and RunTask's answer last. When
 * the scheduler drains, each open stream ends with UNAVAILABLE (its ErrorInfo carrying the
 * task id) so the caller re-attaches elsewhere at once; the run itself goes on.
 */
export class RunStreams {
  private readonly active = new Set<() => void>();
  private draining = false;

  constructor(
    private readonly orchestrator: RunOrchestrator,
    private readonly results: ResultsServiceClient,
    private readonly log: Logger,
  ) {}

  /** Streams currently open. */
  get size(): number {
    return this.active.size;
  }

  /** Serves one StartRun call. */
  async start(req: StartRunRequest, call: StartRunCall): Promise<void> {
    if (this.draining) throw new UnavailableError('the scheduler is shutting down; call StartRun again on another scheduler');
    const caller = actingCaller(call);
    const write = (update: Update): void => {
      if (!call.cancelled && !call.writableEnded) call.write({ update });
    };
    let relay: ProgressRelay | undefined;
    let taskId = '';
    const onStarted = (started: RunStartedNote): void => {
      taskId = started.taskId;
      write({ $case: 'started', value: { taskId: started.taskId, nodes: started.nodes, run: started.run, repeated: started.repeated } });
      relay = new ProgressRelay(this.results, started, caller ?? ON_BEHALF_OF_SELF, write, this.log);
    };
    let abandon: () => void = () => undefined;
    const abandoned = new Promise<'abandoned'>((resolve) => (abandon = () => resolve('abandoned')));
    this.active.add(abandon);
    const running = this.orchestrator.runTask(req.run ?? RunTaskRequest.fromPartial({}), call, { checkAs: caller, onStarted });
    try {
      const outcome = await Promise.race([running, abandoned]);
      if (outcome === 'abandoned') {
        // The run goes on in this process until it drains; the caller follows it by task id.
        running.catch(() => undefined);
        relay?.stop();
        throw new BatonError(
          status.UNAVAILABLE,
          'SCHEDULER_DRAINING',
          taskId
            ? `the scheduler is shutting down; run ${taskId} goes on: follow it with WatchRun or GetRunStatus`
            : 'the scheduler is shutting down before the run was created; call StartRun again with the same request_id',
          taskId ? { task_id: taskId } : {},
        );
      }
      await relay?.finish(isFinalRunState(outcome.run?.state ?? RunState.RUN_STATE_UNSPECIFIED), FINAL_EVENTS_GRACE_MS);
      write({ $case: 'finished', value: outcome satisfies RunTaskResponse });
    } catch (err) {
      // A gate that closed made the run FAILED: its failed nodes go out as progress before the error.
      await relay?.finish(true, FINAL_EVENTS_GRACE_MS);
      throw err;
    } finally {
      relay?.stop();
      this.active.delete(abandon);
    }
  }

  /** Ends every open stream with UNAVAILABLE (and refuses new ones): the server is draining. */
  endAll(): void {
    this.draining = true;
    for (const abandon of [...this.active]) abandon();
  }
}
