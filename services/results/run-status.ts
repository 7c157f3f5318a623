import { NodeState, RunState, NodeResult, type Run, type RunStats, type RunSummary } from '../../gen/baton/v1/run';
import { isFinalNodeState } from './run-states';

/**
 * The items / stats / summary document of a run, in the shape of `mco tasks status --json`
 * (choria-tasks.md §5.4, §5.5), computed from the run record and its node results. Pure: no
 * Redis, no clock.
 *
 * Counting rules, one node at a time, first match wins. Where Choria's `request_and_report`
 * is defective (choria-tasks.md §9.3) the rule says how Baton differs:
 * - NO_RESPONSE → failed, and listed in `noresponses` (Choria never lists non-responders).
 * - statuscode 3 → failed + task_not_known.
 * - statuscode 5 → failed + wrapper_failure (the task never ran; not completed).
 * - completed (the task exited) or CANCELLED → completed; success when SUCCEEDED, else failed;
 *   its runtime counts towards the average. Choria counts a task that exited non-zero as
 *   failed only, neither completed nor in the average; Baton counts it as completed. A
 *   CANCELLED node is done and did not succeed, so it is completed and failed even when the
 *   task never started.
 * - any other final state (FAILED without completing, for example statuscode 4) → failed only.
 * - otherwise (PENDING, DOWNLOADING, DOWNLOADED, RUNNING) → running; its runtime so far counts
 *   towards the average.
 * average_runtime = total runtime / (completed + running), 0 when both are 0 (Choria prints
 * `NaNs`, issue puppet-choria#300).
 */

/** The computed document of GetRunStatus. */
export interface RunStatus {
  /** One result per node of the run, sorted by host. */
  items: NodeResult[];
  stats: RunStats;
  summary: RunSummary;
}

/** MCollective status code of a node that does not know the task (choria-tasks.md §2). */
export const STATUSCODE_UNKNOWN_TASK = 3;
/** MCollective status code of an agent-side failure: wrapper or download failure. */
export const STATUSCODE_AGENT_ERROR = 5;

/** The result a node has before it reports anything: PENDING, exit code -1. */
export function pendingNodeResult(run: Run, host: string): NodeResult {
  return NodeResult.fromPartial({ host, taskId: run.taskId, task: run.task, callerid: run.caller, state: NodeState.NODE_STATE_PENDING, exitcode: -1 });
}

/** One result per node of `run` (a pending one where none is stored), sorted by host. */
export function runItems(run: Run, results: ReadonlyMap<string, NodeResult>): NodeResult[] {
  const hosts = [...new Set(run.nodes)].sort();
  return hosts.map((host) => results.get(host) ?? pendingNodeResult(run, host));
}

/** A finite, non-negative runtime; anything else counts as 0 so the average is never NaN. */
function runtimeOf(result: NodeResult): number {
  return Number.isFinite(result.runtime) && result.runtime > 0 ? result.runtime : 0;
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
  for (const r of items) {
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
      totalRuntime += runtimeOf(r);
      if (r.state === NodeState.NODE_STATE_SUCCEEDED) stats.success++;
      else stats.failed++;
    } else if (isFinalNodeState(r.state)) {
      stats.failed++;
    } else {
      stats.running++;
      totalRuntime += runtimeOf(r);
    }
  }
  const measured = stats.completed + stats.running;
  stats.averageRuntime = measured > 0 ? totalRuntime / measured : 0;
  const nodes = run.nodes.length;
  const summary: RunSummary = { nodes, taskid: run.taskId, completed: stats.completed === nodes, success: stats.success === nodes };
  return { items, stats, summary };
}

/**
 * The state a RUNNING run moves to once every node is final: SUCCEEDED when every node
 * succeeded, FAILED otherwise; undefined while some node is not final (or has no result).
 */
export function finalRunStateOf(run: Run, results: ReadonlyMap<string, NodeResult>): RunState | undefined {
  let allSucceeded = true;
  for (const host of run.nodes) {
    const r = results.get(host);
    if (!r || !isFinalNodeState(r.state)) return undefined;
    if (r.state !== NodeState.NODE_STATE_SUCCEEDED) allSucceeded = false;
  }
  return allSucceeded ? RunState.RUN_STATE_SUCCEEDED : RunState.RUN_STATE_FAILED;
}
