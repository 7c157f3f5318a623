import type { ServerWritableStream } from '@grpc/grpc-js';
import type { RedisClient as Redis } from '../../lib/redis-client';
import type {
  CreateRunRequest,
  CreateRunResponse,
  GetRunProgressRequest,
  GetRunProgressResponse,
  GetRunStatusRequest,
  GetRunStatusResponse,
  ListRunsRequest,
  ListRunsResponse,
  RecordNodeResultsRequest,
  RecordNodeResultsResponse,
  ResultsServiceServer,
  UpdateRunStateRequest,
  UpdateRunStateResponse,
  WatchRunEventsRequest,
  WatchRunEventsResponse,
} from '../../gen/baton/v1/results_service';
import { NodeResult, RunState, runStateToJSON, type Run } from '../../gen/baton/v1/run';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../lib/errors';
import { serverStreamHandler, unaryHandler } from '../../lib/grpc-server';
import type { Logger } from '../../lib/logger';
import type { MethodRoles } from '../../lib/method-roles';
import { RedisKeys } from '../../lib/redis';
import { RUN_PAGE_TOKENS } from './run-page-token';
import { requireTaskId } from '../../lib/task-id';
import { runQueryFingerprint, runQueryOf } from './run-query';
import { RunRetention } from './run-retention';
import { asUnavailable, RedisAvailability } from './redis-availability';
import { RunEventWatches } from './run-event-watches';
import { everyNodeFinal, isFinalRunState, runEndState } from '../../lib/run-states';
import { computeRunStatus } from '../../lib/run-status';
import { ReadAccess } from './read-access';
import { projectResult, resultFieldsOf, slimItems } from './run-result-fields';
import { parseResultWhere, resultFieldsFor, resultMatches } from '../../lib/bolt-task-results';
import { RunStore } from './run-store';
import { briefHolds, briefItems } from './run-brief';
import type { CallerSource } from '../../lib/access-control';
import { normalizeNewRun, normalizeNodeResults, requireResumeToken, requireRunState, unknownHostsError } from './run-validation';
import { headerOf, RunHeaderCache, type RunHeader } from './run-header';

/** What finalisation reads of each node. */
const STATE_FIELDS = resultFieldsOf(['state']);

/** ListRuns page size when the request says 0. */
export const DEFAULT_PAGE_SIZE = 50;
/** Largest ListRuns page; larger requests are cut to this. */
export const MAX_PAGE_SIZE = 500;

/** Options of `createResultsService`. */
export interface ResultsServiceOptions {
  /** Connected client; the service never closes it. */
  redis: Redis;
  /** Key prefix of every key (config `key-prefix`). */
  keyPrefix: string;
  log: Logger;
  /** Clock, for tests; default `() => new Date()`. */
  now?: () => Date;
  /** Seconds a run is kept after it ended (config `run-retention-s`); 0 keeps runs forever. Default 30 days. */
  runRetentionS?: number;
  /** Seconds between retention sweeps (config `retention-sweep-interval-s`). Default 3600. */
  retentionSweepIntervalS?: number;
  /** Who may read which runs (policy `read`, own-results-only); default: everyone reads everything. */
  readAccess?: ReadAccess;
}

/**
 * Who may call the ResultsService (lib/method-roles.ts): only services (the scheduler)
 * create runs and record results, so no operator or agent can forge a run or a node's result;
 * operators and services read. GetRunProgress is the scheduler's own bookkeeping, answered
 * without reading the run record, so without the read policy that needs it: services only.
 */
export const RESULTS_SERVICE_ROLES: MethodRoles = {
  default: ['operator', 'service'],
  methods: { CreateRun: ['service'], RecordNodeResults: ['service'], UpdateRunState: ['service'], GetRunProgress: ['service'] },
};

/** A results service: its gRPC handlers and the hook that ends its streams on drain. */
export interface ResultsService {
  implementation: ResultsServiceServer;
  /** Ends every WatchRunEvents stream cleanly; register with RunningServer.onDrain. */
  endStreams(): void;
  /** The retention sweeper; not started here (`retention.start()`), so tests sweep when they choose. */
  retention: RunRetention;
}

function runNotFound(taskId: string): NotFoundError {
  return new NotFoundError('RUN_NOT_FOUND', `no run with task id ${taskId}`, { task_id: taskId });
}

/**
 * Creates the ResultsService handlers over one Redis database. Runs and node results live in
 * Redis only, so any number of these processes can serve the same runs, and a restart loses
 * nothing.
 */
export function createResultsService(options: ResultsServiceOptions): ResultsService {
  const { redis, log } = options;
  const now = options.now ?? (() => new Date());
  const store = new RunStore(redis, new RedisKeys(options.keyPrefix));
  const headers = new RunHeaderCache();
  const availability = new RedisAvailability(redis);
  const watches = new RunEventWatches(store, redis, log);
  const readAccess = options.readAccess ?? ReadAccess.allowAll(log);
  const retention = new RunRetention({ store, log, now, runRetentionS: options.runRetentionS, sweepIntervalS: options.retentionSweepIntervalS });

  /** Every handler: wait for Redis briefly, and report a Redis outage as UNAVAILABLE. */
  const guarded =
    <Req, Res, Call>(fn: (request: Req, call: Call) => Promise<Res>) =>
    async (request: Req, call: Call): Promise<Res> => {
      try {
        await availability.ready();
        return await fn(request, call);
      } catch (err) {
        throw asUnavailable(err);
      }
    };

  /** Slim items of `run` (fields `slim`, all held by a brief when `briefs` are given): from its briefs, else from its full results. */
  const slimItemsOf = async (run: Run, briefs: string[], slim: string[]): Promise<NodeResult[]> =>
    briefs.length > 0 ? briefItems(run, briefs, slim) : slimItems(run, await store.getResultsProjected(run.taskId, (json) => projectResult(json, slim)), slim);

  /**
   * Moves a RUNNING run whose nodes are all final to SUCCEEDED or FAILED. Called after results
   * are recorded and after a run becomes RUNNING, since results can arrive before the
   * scheduler marks the run RUNNING and after it stopped waiting.
   */
  const finaliseIfDone = async (taskId: string): Promise<Run | undefined> =>
    store.updateRun(
      taskId,
      async (run) => {
        if (run.state !== RunState.RUN_STATE_RUNNING) return undefined;
        // The nodes' states are read only when every node is final: once per run, and from the
        // briefs (no output) where the run has them.
        if (!everyNodeFinal(await store.finalHostCount(taskId), run.nodes.length)) return undefined;
        const items = await slimItemsOf(run, await store.getBriefs(taskId), STATE_FIELDS);
        const states = new Map(items.map((r) => [r.host, r.state]));
        const state = runEndState(run.nodes, (host) => states.get(host));
        if (state === undefined) return undefined;
        log.info({ taskId, state: runStateToJSON(state) }, 'run finished');
        return { run: { ...run, state, endTime: now() }, event: { state, reason: '' } };
      },
      now(),
    );

  /**
   * A slim read. Fields the run's briefs hold (run-brief.ts), such as bolt_task's exitcode, are
   * read from them, since reading and parsing every full result (output included) grows with what
   * every task printed. Other fields, and a run created before briefs were kept, read the full results.
   */
  const slimStatus = async (taskId: string, slim: string[], call: CallerSource): Promise<GetRunStatusResponse> => {
    const [run, briefs] = await Promise.all([store.getRun(taskId), briefHolds(slim) ? store.getBriefs(taskId) : []]);
    if (!run) throw runNotFound(taskId);
    readAccess.checkRun(call, run);
    const items = await slimItemsOf(run, briefs, slim);
    return { run, items, stats: undefined, summary: undefined };
  };

  const getRunStatus = async (req: GetRunStatusRequest, call: CallerSource): Promise<GetRunStatusResponse> => {
    requireTaskId(req.taskId);
    if (req.resultFields) {
      const where = req.resultFields.where ? parseResultWhere(req.resultFields.where, req.taskId) : undefined;
      const slim = resultFieldsOf(where ? [...req.resultFields.fields, ...resultFieldsFor([where], req.taskId)] : req.resultFields.fields);
      const status = await slimStatus(req.taskId, slim, call);
      if (!where || !status.run) return status;
      // Only the matches travel: not the 10,000 names of a 10,000-node run's record either.
      const items = status.items.filter((r) => resultMatches(where, r));
      return {
        ...status,
        run: { ...status.run, nodes: [] },
        items: req.resultFields.hostsOnly ? items.map((r) => NodeResult.fromPartial({ host: r.host })) : items,
      };
    }
    const [run, results] = await Promise.all([store.getRun(req.taskId), store.getResults(req.taskId)]);
    if (!run) throw runNotFound(req.taskId);
    readAccess.checkRun(call, run);
    return { run, ...computeRunStatus(run, results) };
  };

  /**
   * How far a run got, for the coordinator that follows it: nothing read grows with the run (its
   * header and final set, RUN_PROGRESS_SCRIPT), so following a run of 100,000 nodes costs the
   * same per call as one of 10.
   */
  const getRunProgress = async (req: GetRunProgressRequest): Promise<GetRunProgressResponse> => {
    requireTaskId(req.taskId);
    let progress = await store.runProgress(req.taskId, req.hosts);
    // A run created before headers gets one from its record, once.
    if (!progress && (await store.ensureHeader(req.taskId))) progress = await store.runProgress(req.taskId, req.hosts);
    if (!progress) throw runNotFound(req.taskId);
    return progress;
  };

  const listRuns = async (asked: ListRunsRequest, call: CallerSource): Promise<ListRunsResponse> => {
    const req = readAccess.restrictList(call, asked);
    if (req.pageSize < 0) {
      const description = `page_size must be 0 (meaning ${DEFAULT_PAGE_SIZE}) or more, got ${req.pageSize}`;
      throw new InvalidArgumentError(description, [{ field: 'page_size', description }]);
    }
    const size = Math.min(req.pageSize || DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
    const query = runQueryOf(req);
    const fingerprint = runQueryFingerprint(query);
    const cursor = req.pageToken ? RUN_PAGE_TOKENS.decode(req.pageToken, fingerprint) : undefined;
    const { runs, next } = await store.listRuns(query, cursor, size);
    return { runs, nextPageToken: next ? RUN_PAGE_TOKENS.encode(next, fingerprint) : '' };
  };

  const watchRunEvents = async (req: WatchRunEventsRequest, call: ServerWritableStream<WatchRunEventsRequest, WatchRunEventsResponse>): Promise<void> => {
    requireTaskId(req.taskId);
    requireResumeToken(req.resumeToken);
    const run = readAccess.active ? await store.getRun(req.taskId) : undefined;
    if (readAccess.active ? !run : !(await store.hasRun(req.taskId))) throw runNotFound(req.taskId);
    if (run) readAccess.checkRun(call, run);
    await watches.watch(req, call);
  };

  const createRun = async (req: CreateRunRequest): Promise<CreateRunResponse> => {
    const time = now();
    const run = normalizeNewRun(req.run, time);
    if (!(await store.createRun(run, time))) {
      throw new AlreadyExistsError('RUN_EXISTS', `a run with task id ${run.taskId} exists already`);
    }
    // The scheduler records this run's results next, most likely through this process.
    headers.set(headerOf(run));
    log.info({ taskId: run.taskId, task: run.task, nodes: run.nodes.length }, 'run created');
    return { run };
  };

  /**
   * The run's header: from this process's cache, else from Redis (written from the record for a
   * run created before headers). Throws NOT_FOUND when the run does not exist.
   */
  const headerFor = async (taskId: string, cached: boolean): Promise<RunHeader> => {
    const known = cached ? headers.get(taskId) : undefined;
    if (known) return known;
    const header = await store.ensureHeader(taskId);
    if (!header) throw runNotFound(taskId);
    headers.set(header);
    return header;
  };

  /**
   * Records a batch of results at a cost per result that does not depend on the run's size:
   * nothing here reads the run record or its node list (run-header.ts, RECORD_RESULTS_SCRIPT).
   */
  const recordNodeResults = async (req: RecordNodeResultsRequest): Promise<RecordNodeResultsResponse> => {
    requireTaskId(req.taskId);
    for (let attempt = 0; ; attempt++) {
      // A second attempt reads the header from Redis: the cached one was refused as stale.
      const header = await headerFor(req.taskId, attempt === 0);
      const results = normalizeNodeResults(header, req.results);
      const stored = await store.recordResults(header, results, now());
      if (stored.outcome === 'unknown-hosts') throw unknownHostsError(req.taskId, results, stored.positions);
      if (stored.outcome !== 'recorded') {
        headers.delete(req.taskId);
        if (attempt < 2) continue;
        throw runNotFound(req.taskId);
      }
      log.debug({ taskId: req.taskId, given: results.length, recorded: stored.changed }, 'node results recorded');
      // Only once every node is final and while the run may still end: reading the run on each
      // call made big runs quadratic. The header's state follows the record's; a state that is
      // not final yet (RUNNING, or results that arrived first) leaves the decision to
      // finaliseIfDone, which reads the run once.
      if (everyNodeFinal(stored.finalHosts, header.nodes) && !isFinalRunState(stored.state)) await finaliseIfDone(req.taskId);
      return { recorded: stored.changed };
    }
  };

  const updateRunState = async (req: UpdateRunStateRequest): Promise<UpdateRunStateResponse> => {
    requireTaskId(req.taskId);
    requireRunState(req.state);
    const updated = await store.updateRun(
      req.taskId,
      (run) => {
        if (run.state === req.state) return undefined; // a retried update changes nothing
        if (isFinalRunState(run.state)) {
          throw new FailedPreconditionError(
            'RUN_FINISHED',
            `run ${run.taskId} is ${runStateToJSON(run.state)} already; a finished run cannot become ${runStateToJSON(req.state)}`,
            { task_id: run.taskId, state: runStateToJSON(run.state) },
          );
        }
        const final = isFinalRunState(req.state);
        const next: Run = {
          ...run,
          state: req.state,
          endTime: final ? now() : undefined,
          error: req.state === RunState.RUN_STATE_FAILED ? req.reason : run.error,
        };
        return { run: next, event: { state: req.state, reason: req.reason } };
      },
      now(),
    );
    if (!updated) throw runNotFound(req.taskId);
    log.info({ taskId: req.taskId, state: runStateToJSON(updated.state) }, 'run state updated');
    if (updated.state !== RunState.RUN_STATE_RUNNING) return { run: updated };
    return { run: (await finaliseIfDone(req.taskId)) ?? updated };
  };

  return {
    implementation: {
      getRunStatus: unaryHandler(log, guarded(getRunStatus)),
      listRuns: unaryHandler(log, guarded(listRuns)),
      watchRunEvents: serverStreamHandler(log, guarded(watchRunEvents)),
      createRun: unaryHandler(log, guarded(createRun)),
      recordNodeResults: unaryHandler(log, guarded(recordNodeResults)),
      updateRunState: unaryHandler(log, guarded(updateRunState)),
      getRunProgress: unaryHandler(log, guarded(getRunProgress)),
    },
    endStreams: () => watches.endAll(),
    retention,
  };
}
