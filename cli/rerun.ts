import type { Filter } from '../gen/baton/v1/filter';
import { NodeState } from '../gen/baton/v1/run';
import { CliError, EXIT } from './cli-error';
import type { Clients } from './connection';
import { checkTaskId } from './task-id-argument';

/** Which nodes of an earlier run `--rerun` picks (Bolt's `--rerun`). */
export type RerunMode = 'failure' | 'success' | 'all';

const MODES: readonly RerunMode[] = ['failure', 'success', 'all'];

/**
 * Takes `--rerun ID [failure|success|all]` (or `--rerun=ID`) out of `argv`: commander options
 * take one value, and the mode word would otherwise be read as an excess argument.
 */
export function takeRerun(argv: string[]): { argv: string[]; taskId?: string; mode: RerunMode } {
  const out: string[] = [];
  let taskId: string | undefined;
  let mode: RerunMode = 'failure';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--rerun' || a.startsWith('--rerun=')) {
      taskId = a === '--rerun' ? argv[++i] : a.slice('--rerun='.length);
      if (taskId === undefined || taskId.startsWith('-')) throw new CliError('--rerun expects a task id, then optionally failure, success or all');
      if ((MODES as readonly string[]).includes(argv[i + 1])) mode = argv[++i] as RerunMode;
      checkTaskId(taskId);
      continue;
    }
    out.push(a);
  }
  return { argv: out, taskId, mode };
}

/**
 * Sets the filter's identities to the nodes of run `taskId` that `mode` picks: `failure` is
 * every node that did not succeed, including those that never answered or were cancelled;
 * `success` the ones that succeeded; `all` every node of the run. Other filters still narrow it.
 */
export async function rerunNodes(clients: Clients, filter: Filter, taskId: string, mode: RerunMode): Promise<void> {
  if (filter.identities.length > 0) throw new CliError('--rerun picks the nodes itself: drop -I and --nodes (other filters narrow its choice)');
  const status = await clients.call('results', (c) => c.getRunStatus, { taskId });
  const all = status.run?.nodes ?? status.items.map((i) => i.host);
  const succeeded = new Set(status.items.filter((i) => i.state === NodeState.NODE_STATE_SUCCEEDED).map((i) => i.host));
  const nodes = mode === 'all' ? all : all.filter((n) => succeeded.has(n) === (mode === 'success'));
  if (nodes.length === 0) {
    const none = { failure: 'every node succeeded', success: 'no node succeeded', all: 'it has no nodes' }[mode];
    throw new CliError(`nothing to rerun: in run ${taskId} ${none}`, EXIT.NO_NODES);
  }
  filter.identities = nodes;
}
