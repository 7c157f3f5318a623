import { NodeState, RunState } from '../gen/baton/v1/run';

/**
 * Which run and node states are final. A final node state is one the node never leaves on its
 * own: the task exited (SUCCEEDED, FAILED), was cancelled, or the node did not answer in time
 * (NO_RESPONSE, which a late answer may still replace). A final run state ends a run's event
 * log for watchers that follow it.
 */

/** Node states after which the node's task does nothing more. */
export const FINAL_NODE_STATES: ReadonlySet<NodeState> = new Set([
  NodeState.NODE_STATE_SUCCEEDED,
  NodeState.NODE_STATE_FAILED,
  NodeState.NODE_STATE_CANCELLED,
  NodeState.NODE_STATE_NO_RESPONSE,
]);

/** Run states a run never leaves. */
export const FINAL_RUN_STATES: ReadonlySet<RunState> = new Set([
  RunState.RUN_STATE_SUCCEEDED,
  RunState.RUN_STATE_FAILED,
  RunState.RUN_STATE_CANCELLED,
]);

/** True when `state` is a final node state. */
export function isFinalNodeState(state: NodeState): boolean {
  return FINAL_NODE_STATES.has(state);
}

/** True when `state` is a final run state. */
export function isFinalRunState(state: RunState): boolean {
  return FINAL_RUN_STATES.has(state);
}

/** The values of a generated enum other than UNSPECIFIED (0) and UNRECOGNIZED (-1). */
function specifiedValues(e: Record<string, string | number>): ReadonlySet<number> {
  return new Set(Object.values(e).filter((v): v is number => typeof v === 'number' && v > 0));
}

const KNOWN_NODE_STATES = specifiedValues(NodeState);
const KNOWN_RUN_STATES = specifiedValues(RunState);

/** True when `state` is one of the proto's node states other than UNSPECIFIED. */
export function isKnownNodeState(state: number): state is NodeState {
  return KNOWN_NODE_STATES.has(state);
}

/** True when `state` is one of the proto's run states other than UNSPECIFIED. */
export function isKnownRunState(state: number): state is RunState {
  return KNOWN_RUN_STATES.has(state);
}

/** What a follower of a run's event log knows of it so far: its state and each node's. */
export interface RunView {
  state: RunState;
  nodes: Map<string, NodeState>;
}

/** Node states at which a node holds its verified files (or went past that point). */
const PAST_DOWNLOAD: ReadonlySet<NodeState> = new Set([
  NodeState.NODE_STATE_DOWNLOADED,
  NodeState.NODE_STATE_RUNNING,
  NodeState.NODE_STATE_SUCCEEDED,
  NodeState.NODE_STATE_FAILED,
  NodeState.NODE_STATE_NO_RESPONSE,
  NodeState.NODE_STATE_CANCELLED,
]);

/** How many of the run's nodes are past the download, and how many finished. */
export function countNodes(view: RunView): { downloaded: number; finished: number } {
  let downloaded = 0;
  let finished = 0;
  for (const s of view.nodes.values()) {
    if (PAST_DOWNLOAD.has(s)) downloaded++;
    if (FINAL_NODE_STATES.has(s)) finished++;
  }
  return { downloaded, finished };
}
