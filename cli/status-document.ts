import type { GetRunStatusResponse } from '../gen/baton/v1/results_service';
import { NodeState, type NodeResult } from '../gen/baton/v1/run';

/**
 * The `--json` document of `baton tasks status`: the items/stats/summary shape of
 * `mco tasks status --json` (docs/choria-compat.md §5.4), with mco's snake_case keys so scripts
 * written for Choria keep working. `stdout` is the parsed result value, or the raw text when
 * the task printed no JSON object (mco's `_output` rule).
 */
export interface StatusDocument {
  items: StatusItem[];
  stats: {
    names: string[];
    callers: string[];
    completed: number;
    running: number;
    task_not_known: number;
    wrapper_failure: number;
    success: number;
    failed: number;
    average_runtime: number;
    noresponses: string[];
  };
  summary: { nodes: number; taskid: string; completed: boolean; success: boolean };
}

/** One node's entry in a StatusDocument. */
export interface StatusItem {
  host: string;
  task_id: string;
  task: string;
  callerid: string;
  state: string;
  exitcode: number;
  stdout: unknown;
  stderr: string;
  completed: boolean;
  runtime: number;
  start_time: number;
  statuscode: number;
  statusmsg: string;
}

/** The value shown as an item's `stdout`: `_output` alone collapses to its text, as mco does. */
export function displayValue(result: NodeResult): unknown {
  const value = result.value;
  if (!value) return result.stdout;
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0] === '_output') return value._output as unknown;
  return value;
}

/** `NODE_STATE_SUCCEEDED` → `succeeded`. */
export function nodeStateName(state: NodeState): string {
  const name = NodeState[state] as string | undefined;
  return (name ?? 'NODE_STATE_UNSPECIFIED').replace(/^NODE_STATE_/, '').toLowerCase();
}

/** Builds the `--json` document from the results service's answer. */
export function statusDocument(res: GetRunStatusResponse): StatusDocument {
  const stats = res.stats;
  return {
    items: res.items.map((r) => ({
      host: r.host,
      task_id: r.taskId,
      task: r.task,
      callerid: r.callerid,
      state: nodeStateName(r.state),
      exitcode: r.exitcode,
      stdout: displayValue(r),
      stderr: r.stderr,
      completed: r.completed,
      runtime: r.runtime,
      start_time: r.startTime ? Math.floor(r.startTime.getTime() / 1000) : 0,
      statuscode: r.statuscode,
      statusmsg: r.statusmsg,
    })),
    stats: {
      names: stats?.names ?? [],
      callers: stats?.callers ?? [],
      completed: stats?.completed ?? 0,
      running: stats?.running ?? 0,
      task_not_known: stats?.taskNotKnown ?? 0,
      wrapper_failure: stats?.wrapperFailure ?? 0,
      success: stats?.success ?? 0,
      failed: stats?.failed ?? 0,
      average_runtime: stats?.averageRuntime ?? 0,
      noresponses: stats?.noresponses ?? [],
    },
    summary: {
      nodes: res.summary?.nodes ?? 0,
      taskid: res.summary?.taskid ?? res.run?.taskId ?? '',
      completed: res.summary?.completed ?? false,
      success: res.summary?.success ?? false,
    },
  };
}
