import { Metadata, status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { RunState } from '../gen/baton/v1/run';
import type { RunProgress, RunTaskRequest, RunTaskResponse, StartRunResponse } from '../gen/baton/v1/scheduler_service';
import { isServiceError, readServiceError } from '../lib/errors';
import { countNodes, isFinalRunState } from '../lib/run-states';
import { callerMetadata, type Clients } from './connection';
import { RunFollower } from './run-follower';

/** The run a StartRun stream announced: what the operator needs to watch or cancel it. */
export interface StartedRun {
  taskId: string;
  nodes: number;
}

/** What `startRun` reports as it goes. */
export interface StartRunHandlers {
  /** The run exists: its task id and node count (once). */
  onStarted(run: StartedRun): void;
  /** The run's state and counts, from the stream, or from its event log after a re-attach. */
  onProgress(progress: Pick<RunProgress, 'state' | 'downloaded' | 'finished'>): void;
  /** The stream broke after the run existed (`why`); the run is followed through the results service from now on. */
  onLost(run: StartedRun, why: string): void;
}

/**
 * How `startRun` ended: RunTask's answer on the stream, or the stream broke after the run
 * existed (`lost`: the scheduler restarted or its replica died) and the run was followed
 * through its event log instead, to `reachedState`.
 */
export type StartRunOutcome = { response: RunTaskResponse } | { lost: StartedRun; reachedState: RunState };

/** How long `startRun` keeps calling StartRun again while no scheduler answers, before the run existed, in ms. */
export const RESTART_PATIENCE_MS = 30_000;
/** First pause before calling StartRun again, in ms; doubles to RETRY_MAX_MS. */
const RETRY_INITIAL_MS = 250;
const RETRY_MAX_MS = 2_000;

/** A stream error that a scheduler restart or a lost replica explains, so that calling again can help. */
function brokenStream(err: ServiceError, attempt: number): boolean {
  // A server process killed mid-call shows as UNAVAILABLE, or as INTERNAL naming the reset stream.
  if (err.code !== status.UNAVAILABLE && !(err.code === status.INTERNAL && /RST_STREAM/.test(err.details))) return false;
  // The first call failing to connect at all is a wrong address or a stopped scheduler: said at once.
  return attempt > 0 || readServiceError(err).reason === 'SCHEDULER_DRAINING' || !/No connection established|Failed to connect/i.test(err.details);
}

/**
 * Starts a run with StartRun and follows it on that stream to RunTask's answer. The request
 * carries a request id, so a stream that breaks before the run exists is simply called again
 * (for up to RESTART_PATIENCE_MS, on whichever scheduler answers at the address); one that
 * breaks after is not: the run goes on, and it is followed by task id through the results
 * service's event log until `until` says enough (or `followMs` passed).
 */
export async function startRun(
  clients: Clients,
  request: RunTaskRequest,
  handlers: StartRunHandlers,
  limits: { deadlineMs: number; followMs: number; until: (state: RunState) => boolean },
): Promise<StartRunOutcome> {
  let started: StartedRun | undefined;
  const giveUpAt = Date.now() + RESTART_PATIENCE_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await streamOnce(clients, request, limits.deadlineMs, {
        onStarted: (run) => {
          if (started) return; // a repeated request id names the same run again
          started = run;
          handlers.onStarted(run);
        },
        onProgress: handlers.onProgress,
        onLost: handlers.onLost,
      });
      return { response };
    } catch (err) {
      if (!isServiceError(err) || !brokenStream(err, attempt)) throw await clients.failure('scheduler', err);
      const why = (err.details || err.message).replace(/\.? ?Resolution note:.*$/s, '');
      if (started) {
        handlers.onLost(started, why);
        return { lost: started, reachedState: await followLost(clients, started, handlers, limits) };
      }
      if (Date.now() > giveUpAt) throw await clients.failure('scheduler', err);
      await new Promise((resolve) => setTimeout(resolve, Math.min(RETRY_MAX_MS, RETRY_INITIAL_MS * 2 ** attempt)));
    }
  }
}

/** One StartRun call: resolves with its `finished` answer; rejects with the stream's error. */
function streamOnce(clients: Clients, request: RunTaskRequest, deadlineMs: number, handlers: StartRunHandlers): Promise<RunTaskResponse> {
  return new Promise((resolve, reject) => {
    const metadata: Metadata = callerMetadata();
    const call: ClientReadableStream<StartRunResponse> = clients.scheduler.startRun({ run: request }, metadata, { deadline: Date.now() + deadlineMs });
    let finished: RunTaskResponse | undefined;
    call.on('data', (m: StartRunResponse) => {
      const u = m.update;
      if (u?.$case === 'started') handlers.onStarted({ taskId: u.value.taskId, nodes: u.value.nodes });
      else if (u?.$case === 'progress') handlers.onProgress(u.value);
      else if (u?.$case === 'finished') finished = u.value;
    });
    call.on('error', reject);
    call.on('end', () => {
      if (finished) resolve(finished);
      else
        reject(
          Object.assign(new Error('the scheduler ended the run stream without its answer'), {
            code: status.UNAVAILABLE,
            details: 'the scheduler ended the run stream without its answer',
            metadata: new Metadata(),
          }),
        );
    });
  });
}

/**
 * Follows a run whose StartRun stream broke, through the results service's event log (which
 * every scheduler writes to, so whichever replica carries the run on, its events are there),
 * until `until` holds for its state or `followMs` passed. Resolves with the state reached.
 */
async function followLost(
  clients: Clients,
  run: StartedRun,
  handlers: StartRunHandlers,
  limits: { followMs: number; until: (state: RunState) => boolean },
): Promise<RunState> {
  const first = await clients.call('results', (c) => c.getRunStatus, { taskId: run.taskId });
  const nodes = first.run?.nodes ?? [];
  let reached = first.run?.state ?? RunState.RUN_STATE_UNSPECIFIED;
  if (limits.until(reached) || isFinalRunState(reached)) return reached;
  const report = (state: RunState, view: Parameters<typeof countNodes>[0]) => {
    reached = state;
    handlers.onProgress({ state, ...countNodes(view) });
    if (limits.until(state)) follower.stop();
  };
  const follower = new RunFollower(clients, run.taskId, nodes, { onRunState: report, onNode: (_, view) => report(view.state, view) });
  const timer = setTimeout(() => follower.stop(), limits.followMs);
  try {
    await follower.done;
  } finally {
    clearTimeout(timer);
  }
  return reached;
}
