import type { ServerWritableStream } from '@grpc/grpc-js';
import { duplicateRedis, type RedisClient as Redis } from '../../lib/redis-client';
import type { WatchRunEventsRequest, WatchRunEventsResponse } from '../../gen/baton/v1/results_service';
import type { RunEvent } from '../../gen/baton/v1/run';
import { NotFoundError } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import { parseEventEntries, type RunStore } from './run-store';
import { isFinalRunState, isRunOverEvent } from '../../lib/run-states';

/** Longest a follower blocks in one XREAD, in ms: a stop is noticed within this even if the disconnect below is lost. */
export const WATCH_BLOCK_SLICE_MS = 5_000;

/** Events read from the log per XRANGE/XREAD. */
export const EVENTS_PER_READ = 100;

type WatchCall = ServerWritableStream<WatchRunEventsRequest, WatchRunEventsResponse>;

/** Writes one message, waiting while the client is not reading (flow control). */
function write(call: WatchCall, message: WatchRunEventsResponse): Promise<void> {
  if (call.write(message)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      call.off('drain', done);
      call.off('cancelled', done);
      call.off('close', done);
      resolve();
    };
    call.on('drain', done);
    call.on('cancelled', done);
    call.on('close', done);
  });
}

/**
 * The WatchRunEvents streams of one server. Each stream sends the run's events after the resume
 * token; when following, it then waits for new ones with XREAD BLOCK on a connection of its own
 * (a blocked connection can serve nobody else) until a final RunStateChanged has been sent.
 * A client cancel or a server drain (`endAll`) closes that connection, which ends the blocked
 * read at once, and the stream ends cleanly with OK.
 */
export class RunEventWatches {
  private readonly active = new Set<() => void>();
  private ended = false;

  constructor(
    private readonly store: RunStore,
    /** The main client; followers duplicate it. */
    private readonly redis: Redis,
    private readonly log: Logger,
  ) {}

  /** Streams currently open. */
  get size(): number {
    return this.active.size;
  }

  /** Serves one WatchRunEvents call whose request has been checked and whose run exists. */
  async watch(request: WatchRunEventsRequest, call: WatchCall): Promise<void> {
    if (this.ended) return;
    const taskId = request.taskId;
    let stopped = false;
    let follower: Redis | undefined;
    let followerClosed = false;
    // Once only: a second disconnect arms ioredis's 2 s "destroy the socket" timer after the
    // socket has closed, and that timer then holds the process open.
    const closeFollower = () => {
      if (!follower || followerClosed) return;
      followerClosed = true;
      follower.disconnect();
    };
    const stop = () => {
      stopped = true;
      closeFollower();
    };
    this.active.add(stop);
    call.on('cancelled', stop);
    let last = request.resumeToken || undefined;
    let finalSent = false;
    const send = async (events: RunEvent[]) => {
      for (const event of events) {
        if (stopped) return;
        await write(call, { event });
        last = event.id;
        if (isRunOverEvent(event)) finalSent = true;
      }
    };
    const catchUp = async () => {
      for (;;) {
        const events = await this.store.readEvents(taskId, last, EVENTS_PER_READ);
        await send(events);
        if (stopped || events.length < EVENTS_PER_READ) return;
      }
    };
    try {
      await catchUp();
      if (!request.follow || finalSent || stopped) return;
      // Resumed after the final event, or the run became final while we caught up: its final
      // event is in the log already (written in the same step as the state), so one more
      // catch-up sends all there is and nothing will follow.
      const run = await this.store.getRun(taskId);
      if (!run || isFinalRunState(run.state)) {
        await catchUp();
        return;
      }
      follower = duplicateRedis(this.redis, 'baton-results-watch');
      follower.on('error', () => {}); // errors surface as rejected reads below
      const key = this.store.keys.runEvents(taskId);
      this.log.debug({ taskId }, 'following run events');
      while (!stopped && !finalSent) {
        const reply = await follower.xread('COUNT', EVENTS_PER_READ, 'BLOCK', WATCH_BLOCK_SLICE_MS, 'STREAMS', key, last ?? '0-0');
        if (reply) await send(await this.store.withOutputs(taskId, parseEventEntries(reply[0][1])));
        // A quiet slice: a run removed by retention (a stuck one) sends nothing more, ever.
        else if (!(await this.store.hasRun(taskId)))
          throw new NotFoundError('RUN_NOT_FOUND', `run ${taskId} was removed by retention while it was watched`, { task_id: taskId });
      }
    } catch (err) {
      if (stopped) return; // the disconnect of a stop rejects the blocked read: a clean end
      throw err;
    } finally {
      this.active.delete(stop);
      call.off('cancelled', stop);
      closeFollower();
    }
  }

  /** Ends every open stream (and any started later): the server is draining. */
  endAll(): void {
    this.ended = true;
    for (const stop of this.active) stop();
  }
}
