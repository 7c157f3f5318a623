import { NodeState, NodeResult, type Run, type RunStats, type RunSummary } from '../gen/baton/v1/run';
import { isFinalNodeState } from './run-states';

/**
 * The items / stats / summary document of a run, in the shape of `mco tasks status --json`
 * (docs/choria-compat.md §5.4, §5.5), computed from the run record and its node results. Pure: no
 * Redis, no clock.
 *
 * Counting rules, one node at a time, first match wins. Where Choria's `request_and_report`
 * is defective (docs/choria-compat.md §9) the rule says how Baton differs:
 * - NO_RESPONSE → failed, and listed in `noresponses` (Choria never lists non-responders).
 * - statuscode 3 → failed + task_not_known.
 * - statuscode 5 → failed + wrapper_failure (the task never ran; not completed).
 * - completed (the task exited) or CANCELLED → completed; success when SUCCEEDED, else failed.
 *   Choria counts a task that exited non-zero as failed only, neither completed nor in the
 *   average; Baton counts it as completed. A CANCELLED node is done and did not succeed, so it
 *   is completed and failed even when the task never started (otherwise a cancelled run could
 *   never be `summary.completed`).
 * - any other final state (FAILED without completing, for example statuscode 4) → failed only.
 * - otherwise (PENDING, DOWNLOADING, DOWNLOADED, RUNNING) → running: not final yet (the
 *   scheduler reports this count as the tasks still running).
 * average_runtime = the mean runtime of the nodes whose task started (completed, RUNNING, with
 * a start time or a runtime above 0), 0 when there are none (Choria divides by completed + running
 * and prints
 * `NaNs` when both are 0, issue puppet-choria#300). A node that never started (PENDING, or
 * CANCELLED before it started) has no runtime and would only drag the mean towards 0.
 */

/** The computed document of GetRunStatus. */
export interface RunStatus {
  /** One result per node of the run, sorted by host. */
  items: NodeResult[];
  stats: RunStats;
  summary: RunSummary;
}

/** MCollective status code of a node that does not know the task (docs/choria-compat.md §2). */
export const STATUSCODE_UNKNOWN_TASK = 3;
/** MCollective status code of an agent-side failure: wrapper or download failure. */
export const STATUSCODE_AGENT_ERROR = 5;

/** The result a node has before it reports anything: PENDING, exit code -1. */
export function pendingNodeResult(run: Run, host: string): NodeResult {
  return NodeResult.fromPartial({ host, taskId: run.taskId, task: run.task, callerid: run.caller, state: NodeState.NODE_STATE_PENDING, exitcode: -1 });
}

/** The distinct hosts of `run`, sorted. */
function runHosts(run: Run): readonly string[] {
  // Stored nodes are sorted and distinct already (normalizeNewRun): checking that is one pass,
  // cheaper than a Set and a sort, which remain for a record that is not.
  const nodes = run.nodes;
  for (let i = 1; i < nodes.length; i++) if (!(nodes[i - 1] < nodes[i])) return [...new Set(nodes)].sort();
  return nodes;
}

/** One result per node of `run` (a pending one where none is stored), sorted by host. */
export function runItems(run: Run, results: ReadonlyMap<string, NodeResult>): NodeResult[] {
  return runHosts(run).map((host) => results.get(host) ?? pendingNodeResult(run, host));
}

/** A finite, non-negative runtime; anything else counts as 0 so the average is never NaN. */
function runtimeOf(result: NodeResult): number {
  return Number.isFinite(result.runtime) && result.runtime > 0 ? result.runtime : 0;
}

/** True when the node's task was started: it exited, runs, has a start time or has run for a while. */
function taskStarted(result: NodeResult): boolean {
  return result.completed || result.state === NodeState.NODE_STATE_RUNNING || result.startTime !== undefined || runtimeOf(result) > 0;
}

function distinct(values: string[]): string[] {
  return [...new Set(values.filter((v) => v !== ''))].sort();
}

/** Computes the items, stats and summary of `run` from its stored node results. */
export function computeRunStatus(run: Run, results: ReadonlyMap<string, NodeResult>): RunStatus {
  const items = runItems(run, results);
  const stats: RunStats = {
    names: distinct(items.map((r) => r.task)),
    callers: distinct(items.map((r) => r.callerid)),
    completed: 0,
    running: 0,
    taskNotKnown: 0,
    wrapperFailure: 0,
    success: 0,
    failed: 0,
    averageRuntime: 0,
    noresponses: [],
  };
  let totalRuntime = 0;
  let started = 0;
  for (const r of items) {
    if (taskStarted(r)) {
      started++;
      totalRuntime += runtimeOf(r);
    }
    if (r.state === NodeState.NODE_STATE_NO_RESPONSE) {
      stats.failed++;
      stats.noresponses.push(r.host);
    } else if (r.statuscode === STATUSCODE_UNKNOWN_TASK) {
      stats.failed++;
      stats.taskNotKnown++;
    } else if (r.statuscode === STATUSCODE_AGENT_ERROR) {
      stats.failed++;
      stats.wrapperFailure++;
    } else if (r.completed || r.state === NodeState.NODE_STATE_CANCELLED) {
      stats.completed++;
      if (r.state === NodeState.NODE_STATE_SUCCEEDED) stats.success++;
      else stats.failed++;
    } else if (isFinalNodeState(r.state)) {
      stats.failed++;
    } else {
      stats.running++;
    }
  }
  stats.averageRuntime = started > 0 ? totalRuntime / started : 0;
  const nodes = run.nodes.length;
  const summary: RunSummary = { nodes, taskid: run.taskId, completed: stats.completed === nodes, success: stats.success === nodes };
  return { items, stats, summary };
}
