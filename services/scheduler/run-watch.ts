import { status, type ClientReadableStream, type ServerWritableStream, type ServiceError } from '@grpc/grpc-js';
import type { ResultsServiceClient, WatchRunEventsResponse } from '../../gen/baton/v1/results_service';
import { actingCaller, onBehalfOf, ON_BEHALF_OF_SELF } from '../../lib/access-control';
import type { WatchRunRequest, WatchRunResponse } from '../../gen/baton/v1/scheduler_service';
import type { Logger } from '../../lib/logger';
import { requireTaskId } from '../../lib/task-id';

type WatchCall = ServerWritableStream<WatchRunRequest, WatchRunResponse>;

/**
 * Opens the results service's WatchRunEvents, following the run until it is final, for `caller`
 * (an operator's caller id, or ON_BEHALF_OF_SELF): the results service decides whether that
 * caller may read the run (policy `read`, own-results-only), so reads through the scheduler are
 * checked exactly as reads made there directly.
 */
export function follow(results: ResultsServiceClient, taskId: string, resumeToken: string, caller: string): ClientReadableStream<WatchRunEventsResponse> {
  return results.watchRunEvents({ taskId, resumeToken, follow: true }, onBehalfOf(caller));
}

/**
 * Resolves once the upstream stream ended: OK when it ended by itself or was stopped by us
 * (`stopped()`), rejected with its error otherwise. 'end' comes only after every buffered
 * message was read, so a paused stream is drained before the watch counts as over.
 */
function ended(upstream: ClientReadableStream<WatchRunEventsResponse>, stopped: () => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    upstream.on('end', () => resolve());
    upstream.on('error', (err: ServiceError) => {
      if (stopped() && err.code === status.CANCELLED) resolve();
      else reject(err);
    });
  });
}

/**
 * The scheduler's WatchRun streams: each relays the results service's event log of one run
 * (WatchRunEvents with follow, from the resume token) until the run's final event, so a client
 * needs only the scheduler's address. The results service owns the log, which is why any run
 * can be watched here whichever scheduler started it, and why a reconnecting client loses
 * nothing. A client cancel, or `endAll` when the server drains, cancels the upstream stream
 * and ends the call with OK.
 */
export class RunWatches {
  private readonly active = new Set<() => void>();
  private draining = false;

  constructor(
    private readonly results: ResultsServiceClient,
    private readonly log: Logger,
  ) {}

  /** Streams currently open. */
  get size(): number {
    return this.active.size;
  }

  /** Serves one WatchRun call; NOT_FOUND and INVALID_ARGUMENT of the results service pass through. */
  async watch(req: WatchRunRequest, call: WatchCall): Promise<void> {
    requireTaskId(req.taskId);
    if (this.draining) return;
    const upstream = follow(this.results, req.taskId, req.resumeToken, actingCaller(call) ?? ON_BEHALF_OF_SELF);
    let stopped = false;
    const stop = () => {
      if (stopped) return;
      stopped = true;
      upstream.cancel();
    };
    this.active.add(stop);
    call.on('cancelled', stop);
    const resume = () => upstream.resume();
    upstream.on('data', (m: WatchRunEventsResponse) => {
      if (stopped || !m.event) return;
      // Flow control: a slow client pauses the upstream read instead of filling memory.
      if (!call.write({ event: m.event })) {
        upstream.pause();
        call.once('drain', resume);
      }
    });
    try {
      await ended(upstream, () => stopped);
      this.log.debug({ taskId: req.taskId, cancelled: stopped }, 'watch ended');
    } finally {
      this.active.delete(stop);
      call.off('cancelled', stop);
      call.off('drain', resume);
    }
  }

  /** Ends every open stream (and refuses new ones, which end at once with OK): the server is draining. */
  endAll(): void {
    this.draining = true;
    for (const stop of [...this.active]) stop();
  }
}

/**
 * Resolves once the run's final event is in its log, or after `timeoutMs`, whichever is first
 * (true when final). For a duplicate RunTask whose run this scheduler does not track (started by
 * another replica, or before a restart): it waits as the first call would.
 */
export async function waitForFinalRun(results: ResultsServiceClient, taskId: string, timeoutMs: number): Promise<boolean> {
  const upstream = follow(results, taskId, '', ON_BEHALF_OF_SELF);
  upstream.on('data', () => undefined); // only the end matters; reading keeps the stream flowing
  let stopped = false;
  const timer = setTimeout(() => {
    stopped = true;
    upstream.cancel();
  }, timeoutMs);
  try {
    await ended(upstream, () => stopped);
    return !stopped;
  } finally {
    clearTimeout(timer);
  }
}
