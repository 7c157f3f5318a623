import type { Run } from '../../gen/baton/v1/run';

/**
 * A run's header: the few facts recording a node result needs of its run, in a hash of constant
 * size beside the record (RedisKeys.runHeader). The record holds every node name, so reading it
 * for each result made recording a run of N nodes cost O(N²) in all; the header costs the same
 * at 10 nodes as at 100,000.
 *
 * task, caller and nodes (the node count) never change after CreateRun, so a process keeps them
 * (RunHeaderCache) and the record script checks its copy against the stored one on each call
 * (a run removed and created again under the same task id is told apart). state is the run's
 * RunState, written by the same scripts that write the record (create, replace), so a recorder
 * knows whether the run may still need finalising without reading the record. A run created
 * before headers existed gets one from its record the first time a result is recorded.
 */

/** The constant-size facts of a run. */
export interface RunHeader {
  taskId: string;
  task: string;
  caller: string;
  /** Number of nodes of the run. */
  nodes: number;
}

/** The header of `run`. */
export function headerOf(run: Run): RunHeader {
  return { taskId: run.taskId, task: run.task, caller: run.caller, nodes: run.nodes.length };
}

/** The fields and values of a header hash for `run` (HSET arguments after the key). */
export function headerFields(run: Run): string[] {
  return ['task', run.task, 'caller', run.caller, 'nodes', String(run.nodes.length), 'state', String(run.state)];
}

/** The header in a header hash's task, caller and nodes (HMGET), undefined when the hash is missing or incomplete. */
export function parseHeader(taskId: string, [task, caller, nodes]: Array<string | null>): RunHeader | undefined {
  if (task === null || caller === null || nodes === null || !/^\d+$/.test(nodes)) return undefined;
  return { taskId, task, caller, nodes: Number(nodes) };
}

/** Headers kept per process: enough for every run a busy service records into at once. */
export const HEADER_CACHE_ENTRIES = 10_000;

/**
 * The headers of recent runs, so recording a result needs no read before its script. Bounded:
 * past HEADER_CACHE_ENTRIES the oldest entry goes (a Map iterates in insertion order).
 */
export class RunHeaderCache {
  private readonly headers = new Map<string, RunHeader>();

  constructor(private readonly capacity = HEADER_CACHE_ENTRIES) {}

  get(taskId: string): RunHeader | undefined {
    return this.headers.get(taskId);
  }

  set(header: RunHeader): void {
    this.headers.delete(header.taskId);
    this.headers.set(header.taskId, header);
    if (this.headers.size > this.capacity) this.headers.delete(this.headers.keys().next().value!);
  }

  /** Forgets a header that the stored one contradicted (the run was removed, or created again). */
  delete(taskId: string): void {
    this.headers.delete(taskId);
  }
}
