import { NodeState, RunState, type RunEvent } from '../gen/baton/v1/run';

/**
 * The one owner of "is the run over" (and of "is this node done"). A final node state is one
 * the node never leaves on its own: the task exited (SUCCEEDED, FAILED), was cancelled, or the
 * node did not answer in time (NO_RESPONSE, which a late answer may still replace). A run is
 * over once its state is final, and only the results service makes it so on its nodes' results:
 * when every node's result is final (`everyNodeFinal`) it moves a RUNNING run to `runEndState`
 * in the same step as the run's last event, the RunStateChanged that `isRunOverEvent` names.
 * The scheduler ends a run only by failing or cancelling it (UpdateRunState). Everyone else
 * (the scheduler's coordinator and its StartRun and WatchRun relays, the CLI, retention, the
 * watches of the event log) learns that a run is over from its state or from that event,
 * through these functions, and never counts nodes to decide it.
 */

/** Node states after which the node's task does nothing more. */
const FINAL_NODE_STATES: ReadonlySet<NodeState> = new Set([
  NodeState.NODE_STATE_SUCCEEDED,
  NodeState.NODE_STATE_FAILED,
  NodeState.NODE_STATE_CANCELLED,
  NodeState.NODE_STATE_NO_RESPONSE,
]);

/** Run states a run never leaves. */
const FINAL_RUN_STATES: ReadonlySet<RunState> = new Set([RunState.RUN_STATE_SUCCEEDED, RunState.RUN_STATE_FAILED, RunState.RUN_STATE_CANCELLED]);

/** True when `state` is a final node state. */
export function isFinalNodeState(state: NodeState): boolean {
  return FINAL_NODE_STATES.has(state);
}

/** True when `state` is a final run state: the run is over. */
export function isFinalRunState(state: RunState): boolean {
  return FINAL_RUN_STATES.has(state);
}

/** True for the event that says a run is over: the RunStateChanged into a final state, the last of a followed log. */
export function isRunOverEvent(event: RunEvent | undefined): boolean {
  return event?.event?.$case === 'runStateChanged' && isFinalRunState(event.event.value.state);
}

/** True when every one of a run's `nodes` has a final result (`finalNodes` of them do): the run may end. */
export function everyNodeFinal(finalNodes: number, nodes: number): boolean {
  return finalNodes >= nodes;
}

/**
 * The state a RUNNING run moves to once every node is final: CANCELLED when any node was
 * cancelled (the run was cancelled, whatever the other nodes did: a cancel that reached the
 * nodes before the scheduler's UpdateRunState must not end the run as FAILED), else SUCCEEDED
 * when every node succeeded, FAILED otherwise; undefined while some node is not final (or has
 * no result, `stateOf` answering undefined).
 */
export function runEndState(nodes: Iterable<string>, stateOf: (host: string) => NodeState | undefined): RunState | undefined {
  let allSucceeded = true;
  let cancelled = false;
  for (const host of nodes) {
    const state = stateOf(host);
    if (state === undefined || !isFinalNodeState(state)) return undefined;
    if (state !== NodeState.NODE_STATE_SUCCEEDED) allSucceeded = false;
    if (state === NodeState.NODE_STATE_CANCELLED) cancelled = true;
  }
  if (cancelled) return RunState.RUN_STATE_CANCELLED;
  return allSucceeded ? RunState.RUN_STATE_SUCCEEDED : RunState.RUN_STATE_FAILED;
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
    if (isFinalNodeState(s)) finished++;
  }
  return { downloaded, finished };
}
