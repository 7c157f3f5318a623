import type { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { RunState } from '../../gen/baton/v1/run';
import { unary } from '../../lib/grpc-client';
import type { AgentCounts } from './sim-agents';
import type { WorkerProcess } from './worker-process';

/**
 * What the benchmarks driving simulated agents (bench/fleet/sim-agents.ts) share: their workers'
 * counts summed, and a cheap read of a run's state while it goes on.
 */

/** The least deadline of a progress read, in ms. */
const STATUS_DEADLINE_MS = 10_000;

/** The workers' counts for `taskId`, summed. */
export async function fleetCounts(workers: WorkerProcess[], taskId: string): Promise<AgentCounts> {
  const all = await Promise.all(workers.map((w) => w.request<AgentCounts>({ type: 'counts', taskId })));
  return all.reduce((s, c) => ({
    agents: s.agents + c.agents,
    once: s.once + c.once,
    never: s.never + c.never,
    repeated: s.repeated + c.repeated,
    commandsRepeated: s.commandsRepeated + c.commandsRepeated,
    acked: s.acked + c.acked,
    streamsEnded: s.streamsEnded + c.streamsEnded,
    retryDelays: s.retryDelays + c.retryDelays,
    disconnected: s.disconnected + c.disconnected,
    endedExample: c.endedExample ?? s.endedExample,
    endReasons: sumCounts(s.endReasons, c.endReasons),
  }));
}

/** `a` and `b` added up per key. */
function sumCounts(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** What ended streams between two counts, the most frequent first: `12 x stream ended: ...; 3 x ...`. */
export function endReasonsBetween(before: AgentCounts, after: AgentCounts, top = 4): string {
  return Object.entries(after.endReasons)
    .map(([why, n]): [string, number] => [why, n - (before.endReasons[why] ?? 0)])
    .filter(([, n]) => n > 0)
    .sort((x, y) => y[1] - x[1])
    .slice(0, top)
    .map(([why, n]) => `${n} x ${why}`)
    .join('; ');
}

/**
 * The run's state from GetRunProgress, whose cost does not grow with the run (a slim status would
 * read every node's brief on each poll, and a benchmark's own polling would count as the run's
 * Redis traffic), given until `deadlineMs` (performance.now() ms) but at least STATUS_DEADLINE_MS.
 */
export async function runState(results: ResultsServiceClient, taskId: string, deadlineMs: number): Promise<RunState> {
  const res = await unary(results, results.getRunProgress, { taskId, hosts: [] }, { deadlineMs: Math.max(STATUS_DEADLINE_MS, deadlineMs - performance.now()) });
  return res.state;
}
