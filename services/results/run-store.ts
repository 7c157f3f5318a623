import { randomBytes } from 'node:crypto';
import { execPerKey, type RedisClient as Redis } from '../../lib/redis-client';
import { NodeResult, NodeState, Run, RunEvent, runStateToJSON, type RunStateChanged } from '../../gen/baton/v1/run';
import type { RedisKeys } from '../../lib/redis';
import { canonicalJson } from './canonical-json';
import { CorruptRecordError } from './corrupt-record-error';
import type { PageCursor } from './run-page-token';
import { matchesRunQuery, type RunQuery } from './run-query';
import {
  CREATE_RUN_BEGIN_SCRIPT,
  CREATE_RUN_FINISH_SCRIPT,
  CREATE_RUN_SLICE_SCRIPT,
  DELETE_RUN_SCRIPT,
  EVENT_OUTPUTS_SCRIPT,
  RECORD_RESULTS_SCRIPT,
  REPLACE_RUN_SCRIPT,
  RUN_PROGRESS_SCRIPT,
  RUNS_PAGE_SCRIPT,
  UNKNOWN_HOSTS_SCRIPT,
  WRITE_HEADER_SCRIPT,
} from './run-scripts';
import { isFinalNodeState } from '../../lib/run-states';
import { metrics } from '../../lib/metrics';
import { pendingNodeResult } from '../../lib/run-status';
import { briefBody } from './run-brief';
import { headerOf, parseHeader, type RunHeader } from './run-header';
import { mapLimit } from '../../lib/map-limit';

/** Counts a run entering its state: every state change is written by RunStore, so it is counted here, once. */
function countRunState(run: Run): void {
  metrics.runs.inc({ state: runStateToJSON(run.state) });
}

/**
 * Runs, node results and event logs in Redis (keys: lib/redis.ts RedisKeys). Every message is
 * stored as proto JSON (`Run.toJSON` and friends); event log entries hold one field, `event`,
 * a RunEvent without its id (the id is the stream entry id); a node_result event holds the result
 * without its output (stdout, stderr, value), which is stored once, in the results hash, and put
 * back when events are read (`withOutputs`); a node's brief (run-brief.ts) is its result without
 * output. Changes to one run go through the Lua scripts of run-scripts.ts, so each is atomic
 * together with its event.
 */

/**
 * Most results one record script call takes: one call holds Redis for well under a
 * millisecond per hundred results, so a scheduler's batch (hundreds) is one call.
 */
export const RECORD_BATCH_MAX_RESULTS = 1_000;
/** Most bytes of results and events one record script call takes (one result bigger than this goes alone). */
export const RECORD_BATCH_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Nodes whose pending results one creation script call writes: a call then holds Redis for
 * milliseconds, so creating a run of any size never delays other clients (a scheduler's lease
 * renewal) by more than that.
 */
export const CREATE_SLICE_NODES = 1_000;
/** Creation slices written at once. */
const CREATE_SLICES_IN_FLIGHT = 4;
/** How long a creation claim outlives the last slice written, in ms: an attempt that died is retried after it. */
const CREATE_CLAIM_TTL_MS = 30_000;

/** Attempts of an optimistic run update before giving up (each loses only to a concurrent change). */
export const MAX_REPLACE_ATTEMPTS = 50;

/** Event log entries every run may keep, whatever its size. */
export const EVENT_LOG_BASE_ENTRIES = 1_000;
/**
 * Further event log entries per node of the run. A node normally causes 3 to 5 events
 * (DOWNLOADING, DOWNLOADED, RUNNING, its result, perhaps a late answer after NO_RESPONSE), so
 * an honest run never reaches the cap; a node re-reporting in a loop does, and then the
 * oldest events are trimmed instead of Redis filling up.
 */
export const EVENT_LOG_ENTRIES_PER_NODE = 20;

/** The most entries the event log of a run of `nodeCount` nodes keeps (approximately: MAXLEN ~). */
export function eventLogCap(nodeCount: number): number {
  return EVENT_LOG_BASE_ENTRIES + EVENT_LOG_ENTRIES_PER_NODE * nodeCount;
}

/**
 * Index entries one ListRuns page reads at most while the filters leave most of them out (only
 * when both task and caller are given: one index is read, the other filter checked on each
 * record). The page then ends early, with a token to continue.
 */
export const MAX_ENTRIES_SCANNED_PER_PAGE = 5_000;

/** Index entries read per round while filling a page. */
const INDEX_READ_CHUNK = 100;

/** A run update: the new record and the event that announces it. */
export interface RunChange {
  run: Run;
  event: RunStateChanged;
}

/** One entry of a runs index with its record (undefined when the record is missing). */
export interface IndexedRun {
  taskId: string;
  score: number;
  run: Run | undefined;
}

/** One page of runs: the runs, and the position to continue from when more may follow. */
export interface RunsPage {
  runs: Run[];
  /** The last index entry read, when more entries may follow; undefined on the last page. */
  next: PageCursor | undefined;
}

/** The stored record of a run as read, for a compare-and-delete. */
export interface RawRunEntry {
  taskId: string;
  /** The record text; undefined when the index entry has no record. */
  raw: string | undefined;
  run: Run | undefined;
}

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

/** How far a run got (RUN_PROGRESS_SCRIPT): its state, node count and final count, and which of the hosts asked about are final. */
export interface RunProgress {
  /** RunState number. */
  state: number;
  nodes: number;
  finalNodes: number;
  /** The hosts asked about whose result is final, in the order asked. */
  finalHosts: string[];
}

/** What recording a request's results came to. */
export type RecordOutcome =
  /** Written: how many results changed what was stored, hosts with a final result now, the run's state (RunState number). */
  | { outcome: 'recorded'; changed: number; finalHosts: number; state: number }
  /** The run has no header: it is gone, or was created before headers (`ensureHeader`). Nothing written. */
  | { outcome: 'no-header' }
  /** The stored header differs from the one given (the run was created again): read it again. Nothing written. */
  | { outcome: 'stale-header' }
  /** The results at these positions of the request name hosts that are not nodes of the run. Nothing written. */
  | { outcome: 'unknown-hosts'; positions: number[] };

/** A node_result event as the log stores it: the result without its output (stored once, in the results hash). */
function resultEventJson(result: NodeResult, now: Date): string {
  return eventJson({ time: now, taskId: result.taskId, event: { $case: 'nodeResult', value: { ...result, stdout: '', stderr: '', value: undefined } } });
}

/**
 * How RECORD_RESULTS_SCRIPT treats a result's state: '1' final, '0' not final (never replaces a
 * final result), '2' NO_RESPONSE, final but never replacing a final result either: a node
 * recorded as not answering (its agent lost, say) after it did answer keeps its answer.
 */
function finalFlag(state: NodeState): '0' | '1' | '2' {
  if (state === NodeState.NODE_STATE_NO_RESPONSE) return '2';
  return isFinalNodeState(state) ? '1' : '0';
}

/**
 * The RECORD_RESULTS_SCRIPT arguments of `results` (five per result), cut into calls of at most
 * RECORD_BATCH_MAX_RESULTS results and, beyond the first result of a call, RECORD_BATCH_MAX_BYTES;
 * `start` is the position of a call's first result in `results`.
 */
function recordChunks(header: RunHeader, results: NodeResult[], now: Date): Array<{ start: number; args: string[] }> {
  const chunks: Array<{ start: number; args: string[] }> = [];
  let args: string[] = [];
  let bytes = 0;
  results.forEach((r, i) => {
    const result = canonicalJson(NodeResult.toJSON(r));
    const event = resultEventJson(r, now);
    const size = result.length + event.length;
    if (args.length > 0 && (args.length / 5 >= RECORD_BATCH_MAX_RESULTS || bytes + size > RECORD_BATCH_MAX_BYTES)) {
      chunks.push({ start: i - args.length / 5, args });
      args = [];
      bytes = 0;
    }
    args.push(r.host, result, finalFlag(r.state), event, briefBody(r, header));
    bytes += size;
  });
  if (args.length > 0) chunks.push({ start: results.length - args.length / 5, args });
  return chunks;
}

/** A stand-in host, replaced in the encoded pending result by each node's (`"host":` keeps it from matching inside another field's escaped text). */
const PENDING_HOST = 'pending-host-placeholder';
const PENDING_HOST_JSON = `"host":${JSON.stringify(PENDING_HOST)}`;

/** Reads and writes one Redis database's runs. */
export class RunStore {
  constructor(
    private readonly redis: Redis,
    /** The key builder; its prefix separates Baton installations (and tests). */
    readonly keys: RedisKeys,
  ) {}

  /**
   * Stores a new run with a PENDING result per node and a RunStateChanged event, and its
   * entries in the runs, task and caller indexes. Returns false, writing no run, when the task
   * id exists (or another call is creating it). The run's keys are written in slices of
   * CREATE_SLICE_NODES nodes (run-scripts.ts says how the run is still created once and never
   * seen half-made), so a run of 100,000 nodes does not hold Redis for seconds.
   *
   * The indexes live in other Redis Cluster slots than the run, so they are written by their own
   * commands, before the run: a run always has its entries, and a crash in between leaves at
   * most an entry without a record, which readers skip (`listRuns`) and the retention sweep
   * removes from the runs index (`oldestRuns` gives it without a record). ZADD NX keeps the
   * score of a run that exists already.
   */
  async createRun(run: Run, now: Date): Promise<boolean> {
    const id = run.taskId;
    const score = (run.createTime ?? now).getTime();
    const indexes = this.runIndexes(run);
    const added = await Promise.all(indexes.map((index) => this.redis.zadd(index, 'NX', score, id)));
    let created: unknown;
    try {
      created = await this.writeRun(run, now);
    } catch (err) {
      // No run written: the entries this call added go again (one that was there is another's).
      await Promise.all(indexes.filter((_, i) => added[i] === 1).map((index) => this.redis.zrem(index, id).catch(() => 0)));
      throw err;
    }
    if (created) {
      countRunState(run);
      return true;
    }
    // The task id exists: its run keeps its entries, and the task and caller indexes of this
    // request lose the entry when they are not the existing run's (its header says whose).
    const [task, caller] = await this.redis.hmget(this.keys.runHeader(id), 'task', 'caller');
    const wrong = [task === run.task ? undefined : this.keys.runsByTask(run.task), caller === run.caller ? undefined : this.keys.runsByCaller(run.caller)];
    await Promise.all(wrong.filter((index, i) => index !== undefined && added[i] === 1).map((index) => this.redis.zrem(index!, id)));
    return false;
  }

  /** The run's keys through the three creation scripts; false when the run exists or is being created by another call. */
  private async writeRun(run: Run, now: Date): Promise<boolean> {
    const id = run.taskId;
    const keys = [...this.runKeys(id), this.keys.runCreation(id)];
    const token = randomBytes(12).toString('hex');
    if ((await CREATE_RUN_BEGIN_SCRIPT.run(this.redis, keys, [token, CREATE_CLAIM_TTL_MS])) !== 1) return false;
    // Every pending result is the same but for its host: encoded once and the host put in,
    // not encoded per node (encoding dominates creating a large run).
    const pending = pendingNodeResult(run, PENDING_HOST);
    const [head, tail, ...more] = canonicalJson(NodeResult.toJSON(pending)).split(PENDING_HOST_JSON);
    const body = briefBody(pending, run);
    const sliceKeys = [this.keys.runResults(id), this.keys.runBriefs(id), this.keys.runCreation(id)];
    const writeSlice = async (from: number): Promise<void> => {
      const hosts = run.nodes.slice(from, from + CREATE_SLICE_NODES);
      const args: Array<string | number> = [token, CREATE_CLAIM_TTL_MS, hosts.length];
      for (const host of hosts)
        args.push(
          host,
          more.length === 0 && tail !== undefined
            ? `${head}"host":${JSON.stringify(host)}${tail}`
            : canonicalJson(NodeResult.toJSON(pendingNodeResult(run, host))),
        );
      hosts.forEach((host, i) => args.push(host, `${from + i},${body}`));
      if ((await CREATE_RUN_SLICE_SCRIPT.run(this.redis, sliceKeys, args)) !== 1)
        throw new Error(`run ${id}: its creation claim expired while it was being written`);
    };
    // A few slices in flight: the round trips overlap, and each call still holds Redis briefly.
    const starts = Array.from({ length: Math.ceil(run.nodes.length / CREATE_SLICE_NODES) }, (_, i) => i * CREATE_SLICE_NODES);
    await mapLimit(starts, CREATE_SLICES_IN_FLIGHT, writeSlice);
    const finished = await CREATE_RUN_FINISH_SCRIPT.run(this.redis, keys, [
      token,
      JSON.stringify(Run.toJSON(run)),
      eventJson({ time: now, taskId: id, event: { $case: 'runStateChanged', value: { state: run.state, reason: '' } } }),
      eventLogCap(run.nodes.length),
      run.task,
      run.caller,
      run.nodes.length,
      run.state,
    ]);
    if (finished === -1) throw new Error(`run ${id}: node results written during its creation were removed meanwhile`);
    if (finished !== 1) throw new Error(`run ${id}: its creation claim expired while it was being written`);
    return true;
  }

  /** The keys of one run that the create and delete scripts take, all under the run's hash tag. */
  private runKeys(id: string): string[] {
    return [
      this.keys.run(id),
      this.keys.runResults(id),
      this.keys.runEvents(id),
      this.keys.runFinalHosts(id),
      this.keys.runBriefs(id),
      this.keys.runHeader(id),
      this.keys.runResultEvents(id),
    ];
  }

  /** The indexes listing a run: the task's, the caller's, then all runs (the one the retention sweep reads, removed from last). */
  private runIndexes(run: Run): string[] {
    return [this.keys.runsByTask(run.task), this.keys.runsByCaller(run.caller), this.keys.runs()];
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

  /** A run's results, each stored result parsed and handed to `project` (a slim read keeps only some fields). */
  async getResultsProjected(taskId: string, project: (json: unknown) => NodeResult): Promise<Map<string, NodeResult>> {
    const all = await this.redis.hgetall(this.keys.runResults(taskId));
    return new Map(Object.entries(all).map(([host, raw]) => [host, project(parseJson(raw, `result of ${host}`))]));
  }

  /**
   * The run's node briefs (run-brief.ts: each names its node by position, so only the values
   * are read); empty when the run has none (created before briefs were kept, or gone).
   */
  async getBriefs(taskId: string): Promise<string[]> {
    return this.redis.hvals(this.keys.runBriefs(taskId));
  }

  /** The run's header (run-header.ts), undefined when it has none (gone, or created before headers). */
  async getHeader(taskId: string): Promise<RunHeader | undefined> {
    return parseHeader(taskId, await this.redis.hmget(this.keys.runHeader(taskId), 'task', 'caller', 'nodes'));
  }

  /**
   * The run's header, written from its record first when the run was created before headers
   * (read once, then never again); undefined when the run does not exist.
   */
  async ensureHeader(taskId: string): Promise<RunHeader | undefined> {
    for (let attempt = 0; attempt < MAX_REPLACE_ATTEMPTS; attempt++) {
      const header = await this.getHeader(taskId);
      if (header) return header;
      const current = await this.getRunRaw(taskId);
      if (!current) return undefined;
      const run = current.run;
      const written = await WRITE_HEADER_SCRIPT.run(
        this.redis,
        [this.keys.run(taskId), this.keys.runHeader(taskId)],
        [current.raw, run.task, run.caller, run.nodes.length, run.state],
      );
      if (written === 1) return headerOf(run);
    }
    throw new Error(`run ${taskId} kept changing during ${MAX_REPLACE_ATTEMPTS} attempts to write its header`);
  }

  /**
   * Records validated node results of the run `header` describes (RECORD_RESULTS_SCRIPT: each
   * atomically with its event), reading nothing whose size grows with the run. A request is one
   * script call unless it exceeds RECORD_BATCH_MAX_RESULTS or RECORD_BATCH_MAX_BYTES; then every
   * host is checked before the first call writes, so an unknown host still means nothing written.
   */
  async recordResults(header: RunHeader, results: NodeResult[], now: Date): Promise<RecordOutcome> {
    const taskId = header.taskId;
    const keys = [
      this.keys.runResults(taskId),
      this.keys.runEvents(taskId),
      this.keys.runHeader(taskId),
      this.keys.runFinalHosts(taskId),
      this.keys.runBriefs(taskId),
      this.keys.runResultEvents(taskId),
    ];
    const chunks = recordChunks(header, results, now);
    if (chunks.length > 1) {
      const unknown = (await UNKNOWN_HOSTS_SCRIPT.run(
        this.redis,
        [this.keys.runResults(taskId)],
        results.map((r) => r.host),
      )) as number[];
      if (unknown.length > 0) return { outcome: 'unknown-hosts', positions: unknown };
    }
    let changed = 0;
    let finalHosts = 0;
    let state = 0;
    for (const { start, args } of chunks) {
      const reply = (await RECORD_RESULTS_SCRIPT.run(this.redis, keys, [
        String(args.length / 5),
        header.task,
        header.caller,
        String(header.nodes),
        String(eventLogCap(header.nodes)),
        ...args,
      ])) as number[];
      if (reply[0] === -1) return { outcome: 'no-header' };
      if (reply[0] === -2) return { outcome: 'stale-header' };
      if (reply[0] === -3) return { outcome: 'unknown-hosts', positions: reply.slice(1).map((i) => start + i) };
      changed += reply[0];
      finalHosts = reply[1];
      state = reply[2];
    }
    return { outcome: 'recorded', changed, finalHosts, state };
  }

  /**
   * How far the run got, and which of `hosts` have a final result, from its header and final set
   * only (RUN_PROGRESS_SCRIPT): the cost does not grow with the run. Undefined when the run has
   * no header (gone, or created before headers: `ensureHeader` first).
   */
  async runProgress(taskId: string, hosts: string[]): Promise<RunProgress | undefined> {
    const reply = (await RUN_PROGRESS_SCRIPT.run(this.redis, [this.keys.runHeader(taskId), this.keys.runFinalHosts(taskId)], hosts)) as number[];
    if (reply[0] === -1) return undefined;
    const [state, nodes, finalNodes, ...positions] = reply;
    return { state, nodes, finalNodes, finalHosts: positions.map((i) => hosts[i]) };
  }

  /** How many hosts of the run have a final result (the size of its final set). */
  async finalHostCount(taskId: string): Promise<number> {
    return this.redis.scard(this.keys.runFinalHosts(taskId));
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
      const replaced = await REPLACE_RUN_SCRIPT.run(
        this.redis,
        [this.keys.run(taskId), this.keys.runEvents(taskId), this.keys.runHeader(taskId)],
        [current.raw, JSON.stringify(Run.toJSON(next.run)), event, eventLogCap(current.run.nodes.length), next.run.state],
      );
      if (replaced === 1) {
        if (next.run.state !== current.run.state) countRunState(next.run);
        return next.run;
      }
      if (replaced === -1) return undefined;
    }
    throw new Error(`run ${taskId} kept changing during ${MAX_REPLACE_ATTEMPTS} update attempts`);
  }

  /**
   * Up to `count` runs matching `query`, newest first, after `cursor` (from the newest when
   * undefined). Reads the narrowest index the query allows (a task's or a caller's runs, the
   * smaller of the two when both are given) within the query's time range, so a filtered
   * listing never scans every run; a filter not answered by that index is checked on each
   * record, and a page stops after MAX_ENTRIES_SCANNED_PER_PAGE entries, possibly short, with a
   * cursor to continue. Index entries without a record are skipped.
   */
  async listRuns(query: RunQuery, cursor: PageCursor | undefined, count: number): Promise<RunsPage> {
    const index = await this.indexFor(query);
    // Only with both task and caller does the index hold runs the query leaves out.
    const postFiltered = query.task !== undefined && query.caller !== undefined;
    const runs: Run[] = [];
    let position = cursor;
    let scanned = 0;
    for (;;) {
      // One entry beyond the page tells whether more follow.
      const want = postFiltered
        ? Math.max(count + 1 - runs.length, Math.min(INDEX_READ_CHUNK, MAX_ENTRIES_SCANNED_PER_PAGE - scanned))
        : count + 1 - runs.length;
      const entries = await this.readIndex(index, query, position, want);
      for (const entry of entries) {
        scanned++;
        if (entry.run && matchesRunQuery(entry.run, query)) {
          if (runs.length === count) return { runs, next: position };
          runs.push(entry.run);
        }
        position = { taskId: entry.taskId, score: entry.score };
      }
      if (entries.length < want) return { runs, next: undefined };
      if (scanned >= MAX_ENTRIES_SCANNED_PER_PAGE) return { runs, next: position };
    }
  }

  /** The index to read for `query`: the task's or the caller's (the smaller if both), else all runs. */
  private async indexFor(query: RunQuery): Promise<string> {
    const byTask = query.task !== undefined ? this.keys.runsByTask(query.task) : undefined;
    const byCaller = query.caller !== undefined ? this.keys.runsByCaller(query.caller) : undefined;
    if (byTask && byCaller) {
      const [taskCount, callerCount] = await Promise.all([this.redis.zcard(byTask), this.redis.zcard(byCaller)]);
      return callerCount < taskCount ? byCaller : byTask;
    }
    return byTask ?? byCaller ?? this.keys.runs();
  }

  /** Up to `count` entries of `index` after `cursor` within the query's time range, with their records. */
  private async readIndex(index: string, query: RunQuery, cursor: PageCursor | undefined, count: number): Promise<IndexedRun[]> {
    const bound = (n: number) => (n === -Infinity ? '-inf' : n === Infinity ? '+inf' : String(n));
    const flat = (await RUNS_PAGE_SCRIPT.run(
      this.redis,
      [index],
      [cursor?.taskId ?? '', cursor?.score ?? 0, count, bound(query.minScore), bound(query.maxScore)],
    )) as string[];
    const ids: Array<{ taskId: string; score: number }> = [];
    for (let i = 0; i + 1 < flat.length; i += 2) ids.push({ taskId: flat[i], score: Number(flat[i + 1]) });
    const records = await this.getRaw(ids.map((e) => e.taskId));
    return ids.map(({ taskId, score }, i) => ({ taskId, score, run: records[i].run }));
  }

  /**
   * The records of `taskIds`, in order, with their raw text (for a compare-and-delete). A
   * corrupt record throws CorruptRecordError unless `lenient`, which gives it `run` undefined.
   */
  private async getRaw(taskIds: string[], lenient = false): Promise<RawRunEntry[]> {
    if (taskIds.length === 0) return [];
    // One GET per run (not MGET): the records live in different Redis Cluster slots.
    const replies = await execPerKey(
      this.redis,
      taskIds,
      (taskId) => this.keys.run(taskId),
      (pipeline, taskId) => pipeline.get(this.keys.run(taskId)),
    );
    return taskIds.map((taskId, i) => {
      const [err, raw] = replies[i] ?? [null, null];
      if (err) throw err;
      if (typeof raw !== 'string') return { taskId, raw: undefined, run: undefined };
      try {
        return { taskId, raw, run: Run.fromJSON(parseJson(raw, `run ${taskId}`)) };
      } catch (parseErr) {
        if (lenient) return { taskId, raw, run: undefined };
        throw parseErr;
      }
    });
  }

  /**
   * Up to `count` runs created at or before `maxScore` ms, oldest first, skipping the first
   * `offset` of them: the candidates of a retention sweep (ZRANGEBYSCORE LIMIT, so one read
   * stays small however many runs there are). A corrupt record comes back with `run` undefined
   * and its raw text, so the sweep can still remove it.
   */
  async oldestRuns(maxScore: number, offset: number, count: number): Promise<Array<RawRunEntry & { score: number }>> {
    const flat = await this.redis.zrangebyscore(this.keys.runs(), '-inf', maxScore, 'WITHSCORES', 'LIMIT', offset, count);
    const ids: Array<{ taskId: string; score: number }> = [];
    for (let i = 0; i + 1 < flat.length; i += 2) ids.push({ taskId: flat[i], score: Number(flat[i + 1]) });
    const records = await this.getRaw(
      ids.map((e) => e.taskId),
      true,
    );
    return ids.map(({ score }, i) => ({ ...records[i], score }));
  }

  /**
   * Removes a run and everything of it (DELETE_RUN_SCRIPT) if its record is still `entry.raw`,
   * then its index entries (the task's and the caller's when the record is known, the runs
   * index last: an entry left there by a crash is met again by the next sweep, its record
   * gone). Returns true when removed.
   */
  async deleteRun(entry: RawRunEntry): Promise<boolean> {
    const id = entry.taskId;
    if ((await DELETE_RUN_SCRIPT.run(this.redis, this.runKeys(id), [entry.raw ?? ''])) !== 1) return false;
    const indexes = entry.run ? this.runIndexes(entry.run) : [this.keys.runs()];
    await Promise.all(indexes.slice(0, -1).map((index) => this.redis.zrem(index, id)));
    await this.redis.zrem(this.keys.runs(), id);
    return true;
  }

  /** Up to `count` events of the run's log after event id `after` (from the first when undefined), with their output. */
  async readEvents(taskId: string, after: string | undefined, count: number): Promise<RunEvent[]> {
    const entries = await this.redis.xrange(this.keys.runEvents(taskId), after ? `(${after}` : '-', '+', 'COUNT', count);
    return this.withOutputs(taskId, parseEventEntries(entries));
  }

  /**
   * `events` (read from the run's log) with the output put back into each node_result event that
   * recorded its node's current result (EVENT_OUTPUTS_SCRIPT, one call for all of them). An event
   * whose result was replaced later (RUNNING before the final result, NO_RESPONSE before a late
   * answer) keeps its own fields without output: the log does not hold output, and the
   * replacing event carries the node's output. Events written before events dropped their output
   * hold it themselves and are left as they are.
   */
  async withOutputs(taskId: string, events: RunEvent[]): Promise<RunEvent[]> {
    const args: string[] = [];
    for (const e of events) if (e.event?.$case === 'nodeResult') args.push(e.id, e.event.value.host);
    if (args.length === 0) return events;
    const outputs = (await EVENT_OUTPUTS_SCRIPT.run(this.redis, [this.keys.runResults(taskId), this.keys.runResultEvents(taskId)], args)) as string[];
    let next = 0;
    return events.map((e) => {
      if (e.event?.$case !== 'nodeResult') return e;
      const raw = outputs[next++];
      if (!raw) return e;
      const stored = NodeResult.fromJSON(parseJson(raw, `result of ${e.event.value.host}`));
      return { ...e, event: { $case: 'nodeResult', value: { ...e.event.value, stdout: stored.stdout, stderr: stored.stderr, value: stored.value } } };
    });
  }
}
