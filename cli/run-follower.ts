import type { ClientReadableStream } from '@grpc/grpc-js';
import type { WatchRunEventsResponse } from '../gen/baton/v1/results_service';
import { NodeState, RunState, type NodeResult } from '../gen/baton/v1/run';
import type { Clients } from './connection';
import { unreachable } from './connection';
import { countNodes, isRunOverEvent, type RunView } from '../lib/run-states';

export type { RunView };
export { countNodes };

/** Callbacks of a follower. */
export interface FollowHandlers {
  /** The run changed state (also for the states replayed from the log's start). */
  onRunState?(state: RunState, view: RunView): void;
  /** A node changed state or reported its result. */
  onNode?(result: NodeResult, view: RunView): void;
}

/**
 * Follows a run's event log from its start (ResultsService.WatchRunEvents with follow) and
 * resolves once the run is final, the stream ends, or `stop()` is called. The progress of
 * `tasks run` and `tasks watch` is drawn from it.
 */
export class RunFollower {
  readonly view: RunView;
  private call: ClientReadableStream<WatchRunEventsResponse> | undefined;
  readonly done: Promise<RunView>;

  constructor(clients: Clients, taskId: string, nodes: string[], handlers: FollowHandlers) {
    this.view = { state: RunState.RUN_STATE_UNSPECIFIED, nodes: new Map(nodes.map((n) => [n, NodeState.NODE_STATE_PENDING])) };
    this.done = new Promise((resolve, reject) => {
      const call = clients.results.watchRunEvents({ taskId, resumeToken: '', follow: true });
      this.call = call;
      call.on('data', (msg: WatchRunEventsResponse) => {
        const e = msg.event?.event;
        if (e?.$case === 'runStateChanged') {
          this.view.state = e.value.state;
          handlers.onRunState?.(this.view.state, this.view);
          if (isRunOverEvent(msg.event)) call.cancel();
        } else if (e?.$case === 'nodeResult') {
          this.view.nodes.set(e.value.host, e.value.state);
          handlers.onNode?.(e.value, this.view);
        }
      });
      call.on('error', (err: { code?: number }) => {
        if (err.code === 1 /* CANCELLED: ours */) resolve(this.view);
        else reject(unreachable(err, 'results', clients.address('results')));
      });
      call.on('end', () => resolve(this.view));
    });
  }

  /** Stops following. */
  stop(): void {
    this.call?.cancel();
  }
}
