import type Redis from 'ioredis';
import { NodeResult, Run, RunEvent, type RunStateChanged } from '../../gen/baton/v1/run';
import type { RedisKeys } from '../../lib/redis';
import { canonicalJson } from './canonical-json';
import type { PageCursor } from './page-token';
import { CREATE_RUN_SCRIPT, RECORD_RESULTS_SCRIPT, REPLACE_RUN_SCRIPT, RUNS_PAGE_SCRIPT } from './run-scripts';
import { isFinalNodeState } from './run-states';
import { pendingNodeResult } from './run-status';

/**
 * Runs, node results and event logs in Redis (keys: lib/redis.ts RedisKeys). Every message is
 * stored as proto JSON (`Run.toJSON` and friends); event log entries hold one field, `event`,
 * a RunEvent without its id (the id is the stream entry id). Changes to one run go through the
 * Lua scripts of run-scripts.ts, so each is atomic together with its event.
 */

/** Results recorded per script call: bounds how long one call holds Redis. */
export const RECORD_BATCH_SIZE = 100;

/** Attempts of an optimistic run update before giving up (each loses only to a concurrent change). */
export const MAX_REPLACE_ATTEMPTS = 50;

/** A run update: the new record and the event that announces it. */
export interface RunChange {
  run: Run;
  event: RunStateChanged;
}

/** One entry of the runs index with its record (undefined when the record is missing). */
export interface IndexedRun {
  taskId: string;
  score: number;
  run: Run | undefined;
}

/** A run record that cannot be read back: corrupt data, not a caller's mistake. */
export class CorruptRecordError extends Error {}

function parseJson(raw: string, what: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    throw new CorruptRecordError(`stored ${what} is not valid JSON`);
  }
}

/** Serialises a RunEvent for the event log (its id is assigned by Redis). */
function eventJson(event: Omit<RunEvent, 'id'>): string {
  return JSON.stringify(RunEvent.toJSON({ ...event, id: '' }));
}

/** Parses XRANGE/XREAD entries into RunEvents whose id is the entry id. */
export function parseEventEntries(entries: Array<[id: string, fields: string[]]>): RunEvent[] {
  return entries.map(([id, fields]) => {
    const i = fields.indexOf('event');
    if (i < 0 || i + 1 >= fields.length) throw new CorruptRecordError(`event log entry ${id} has no event field`);
    return { ...RunEvent.fromJSON(parseJson(fields[i + 1], `event ${id}`)), id };
  });
}

/** Reads and writes one Redis database's runs. */
export class RunStore {
  constructor(
    private readonly redis: Redis,
    /** The key builder; its prefix separates Baton installations (and tests). */
    readonly keys: RedisKeys,
  ) {}

  /**
   * Stores a new run with a PENDING result per node and a RunStateChanged event. Returns false,
   * writing nothing, when the task id exists. The runs index is written first and outside the
   * script because it is a global key (another Redis Cluster slot); ZADD NX leaves an existing
   * entry alone, and an index entry whose record never appeared is skipped by `listRuns`.
   */
  async createRun(run: Run, now: Date): Promise<boolean> {
    const id = run.taskId;
    await this.redis.zadd(this.keys.runs(), 'NX', (run.createTime ?? now).getTime(), id);
    const args: string[] = [JSON.stringify(Run.toJSON(run)), eventJson({ time: now, taskId: id, event: { $case: 'runStateChanged', value: { state: run.state, reason: '' } } })];
    for (const host of run.nodes) args.push(host, canonicalJson(NodeResult.toJSON(pendingNodeResult(run, host))));
    const created = await CREATE_RUN_SCRIPT.run(this.redis, [this.keys.run(id), this.keys.runResults(id), this.keys.runEvents(id)], args);
    return created === 1;
  }

  /** True when the run exists. */
  async hasRun(taskId: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.run(taskId))) === 1;
  }

  /** The run record, or undefined when there is none. */
  async getRun(taskId: string): Promise<Run | undefined> {
    return (await this.getRunRaw(taskId))?.run;
  }

  private async getRunRaw(taskId: string): Promise<{ raw: string; run: Run } | undefined> {
    const raw = await this.redis.get(this.keys.run(taskId));
    return raw === null ? undefined : { raw, run: Run.fromJSON(parseJson(raw, `run ${taskId}`)) };
  }

  /** The run's stored node results by host. */
  async getResults(taskId: string): Promise<Map<string, NodeResult>> {
    const all = await this.redis.hgetall(this.keys.runResults(taskId));
    return new Map(Object.entries(all).map(([host, raw]) => [host, NodeResult.fromJSON(parseJson(raw, `result of ${host}`))]));
  }

  /**
   * Records validated node results (each atomically with its event, see RECORD_RESULTS_SCRIPT)
   * and returns how many changed what was stored.
   */
  async recordResults(taskId: string, results: NodeResult[], now: Date): Promise<number> {
    const keys = [this.keys.runResults(taskId), this.keys.runEvents(taskId)];
    let changed = 0;
    for (let start = 0; start < results.length; start += RECORD_BATCH_SIZE) {
      const batch = results.slice(start, start + RECORD_BATCH_SIZE);
      const args: string[] = [String(batch.length)];
      for (const r of batch) {
        args.push(r.host, canonicalJson(NodeResult.toJSON(r)), isFinalNodeState(r.state) ? '1' : '0', eventJson({ time: now, taskId, event: { $case: 'nodeResult', value: r } }));
      }
      changed += Number(await RECORD_RESULTS_SCRIPT.run(this.redis, keys, args));
    }
    return changed;
  }

  /**
   * Updates a run with optimistic concurrency: reads it, asks `change` for the new record and
   * event (undefined: nothing to do), and writes both only if the record is still as read;
   * otherwise starts over. Returns the run as stored afterwards, undefined when there is none.
   */
  async updateRun(taskId: string, change: (run: Run) => Promise<RunChange | undefined> | RunChange | undefined, now: Date): Promise<Run | undefined> {
    for (let attempt = 0; attempt < MAX_REPLACE_ATTEMPTS; attempt++) {
      const current = await this.getRunRaw(taskId);
      if (!current) return undefined;
      const next = await change(current.run);
      if (!next) return current.run;
      const event = eventJson({ time: now, taskId, event: { $case: 'runStateChanged', value: next.event } });
      const replaced = await REPLACE_RUN_SCRIPT.run(this.redis, [this.keys.run(taskId), this.keys.runEvents(taskId)], [current.raw, JSON.stringify(Run.toJSON(next.run)), event]);
      if (replaced === 1) return next.run;
      if (replaced === -1) return undefined;
    }
    throw new Error(`run ${taskId} kept changing during ${MAX_REPLACE_ATTEMPTS} update attempts`);
  }

  /**
   * Up to `count` entries of the runs index, newest first, after `cursor` (from the newest
   * when undefined), with their records, and whether more entries follow.
   */
  async listRuns(cursor: PageCursor | undefined, count: number): Promise<{ entries: IndexedRun[]; more: boolean }> {
    const flat = cursor
      ? ((await RUNS_PAGE_SCRIPT.run(this.redis, [this.keys.runs()], [cursor.taskId, String(cursor.score), count + 1])) as string[])
      : await this.redis.zrevrange(this.keys.runs(), 0, count, 'WITHSCORES');
    const ids: Array<{ taskId: string; score: number }> = [];
    for (let i = 0; i + 1 < flat.length; i += 2) ids.push({ taskId: flat[i], score: Number(flat[i + 1]) });
    const more = ids.length > count;
    const page = ids.slice(0, count);
    // One GET per run (not MGET): the records live in different Redis Cluster slots.
    const pipeline = this.redis.pipeline();
    for (const { taskId } of page) pipeline.get(this.keys.run(taskId));
    const replies = (await pipeline.exec()) ?? [];
    const entries = page.map(({ taskId, score }, i) => {
      const [err, raw] = replies[i] ?? [null, null];
      if (err) throw err;
      return { taskId, score, run: typeof raw === 'string' ? Run.fromJSON(parseJson(raw, `run ${taskId}`)) : undefined };
    });
    return { entries, more };
  }

  /** Up to `count` events of the run's log after event id `after` (from the first when undefined). */
  async readEvents(taskId: string, after: string | undefined, count: number): Promise<RunEvent[]> {
    const entries = await this.redis.xrange(this.keys.runEvents(taskId), after ? `(${after}` : '-', '+', 'COUNT', count);
    return parseEventEntries(entries);
  }
}
