import type { ServiceError } from '@grpc/grpc-js';
import type { RedisClient as Redis } from '../../lib/redis-client';
import { ResultsServiceClient, ResultsServiceService, type WatchRunEventsRequest } from '../../gen/baton/v1/results_service';
import { NodeState, RunState, NodeResult, type Run, type RunEvent } from '../../gen/baton/v1/run';
import { isServiceError } from '../../lib/errors';
import { makeClient, unary } from '../../lib/grpc-client';
import { startServer, type RunningServer } from '../../lib/grpc-server';
import { createLogger } from '../../lib/logger';
import { closeRedis, createRedis } from '../../lib/redis';
import { newTaskId } from '../../lib/task-id';
import { uniquePrefix } from './redis';
import { createResultsService, type ResultsService, type ResultsServiceOptions } from '../../services/results/results-service';

/**
 * Test support: a real results service on 127.0.0.1:0 over a real Redis, a real client, and
 * builders of runs and node results. Used by this folder's tests only.
 */

/** A running results service and a client of it. */
export interface ResultsTestService {
  address: string;
  client: ResultsServiceClient;
  server: RunningServer;
  /** The service's own Redis client. */
  redis: Redis;
  /** Key prefix of this service's keys. */
  prefix: string;
  /** The service itself (its retention sweeper, for one). */
  service: ResultsService;
  /** Drains the server, closes the client and Redis. */
  close(): Promise<void>;
}

/** Options of the service under test beyond Redis, prefix and log (a clock, a retention). */
export type ResultsTestOptions = Pick<ResultsServiceOptions, 'now' | 'runRetentionS' | 'retentionSweepIntervalS'>;

/** Starts a results service with its own key prefix on the Redis at `redisUrl`. */
export async function startResultsTestService(redisUrl: string, prefix = uniquePrefix(), options: ResultsTestOptions = {}): Promise<ResultsTestService> {
  const log = createLogger('results', 'silent');
  const redis = createRedis({ url: redisUrl, log, connectionName: 'baton-results' });
  const service = createResultsService({ redis, keyPrefix: prefix, log, ...options });
  const server = await startServer({
    listen: '127.0.0.1:0',
    services: [{ name: 'baton.v1.ResultsService', definition: ResultsServiceService, implementation: service.implementation }],
    log,
    drainGraceMs: 2_000,
  });
  server.onDrain(() => service.endStreams());
  const client = makeClient(ResultsServiceClient, server.address);
  return {
    address: server.address,
    client,
    server,
    redis,
    prefix,
    service,
    close: async () => {
      service.retention.stop();
      client.close();
      await server.drain();
      await closeRedis(redis);
    },
  };
}

/** A run of `task` on `nodes` with a fresh task id, as the scheduler would create it. */
export function newRun(nodes: string[], fields: Partial<Run> = {}): Run {
  return {
    taskId: newTaskId(),
    task: 'acme::deploy',
    environment: 'production',
    caller: 'user=alice',
    state: RunState.RUN_STATE_UNSPECIFIED,
    nodes,
    filter: undefined,
    inputJson: '{"version":"1.2"}',
    createTime: undefined,
    endTime: undefined,
    error: '',
    noop: false,
    requestId: '',
    ...fields,
  };
}

/** A node result as an agent reports it (task and caller left for the service to fill in). */
export function nodeResult(host: string, fields: Partial<NodeResult> = {}): NodeResult {
  return NodeResult.fromPartial({ host, state: NodeState.NODE_STATE_RUNNING, exitcode: -1, ...fields });
}

/** A finished task: SUCCEEDED for exit code 0, FAILED (statuscode 1) otherwise. */
export function finished(host: string, exitcode: number, runtime: number, fields: Partial<NodeResult> = {}): NodeResult {
  const ok = exitcode === 0;
  return nodeResult(host, {
    state: ok ? NodeState.NODE_STATE_SUCCEEDED : NodeState.NODE_STATE_FAILED,
    exitcode,
    completed: true,
    runtime,
    stdout: ok ? '{"done":true}' : 'boom',
    value: ok ? { done: true } : { _output: 'boom', _error: { kind: 'choria.tasks/task-error', msg: 'exit 1', details: {} } },
    statuscode: ok ? 0 : 1,
    statusmsg: ok ? '' : 'choria.tasks/task-error: exit 1',
    startTime: new Date('2024-01-02T03:04:05.000Z'),
    ...fields,
  });
}

/** Creates `run` through the service. */
export async function createRun(t: ResultsTestService, run: Run): Promise<Run> {
  const res = await unary(t.client, t.client.createRun, { run });
  return res.run!;
}

/** Records `results` of run `taskId` and returns how many changed. */
export async function record(t: ResultsTestService, taskId: string, results: NodeResult[]): Promise<number> {
  return (await unary(t.client, t.client.recordNodeResults, { taskId, results })).recorded;
}

/** Reads all events of a WatchRunEvents call until it ends; rejects with its error status. */
export function collectEvents(
  t: ResultsTestService,
  request: Partial<WatchRunEventsRequest> & { taskId: string },
  onEvent?: (event: RunEvent) => void,
): Promise<RunEvent[]> {
  const stream = t.client.watchRunEvents({ resumeToken: '', follow: false, ...request });
  const events: RunEvent[] = [];
  return new Promise((resolve, reject) => {
    stream.on('data', (msg: { event?: RunEvent }) => {
      events.push(msg.event!);
      onEvent?.(msg.event!);
    });
    stream.on('error', reject);
    stream.on('end', () => resolve(events));
  });
}

/** The gRPC error a promise rejects with (fails if it resolves). */
export async function grpcError(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (err) {
    if (isServiceError(err)) return err;
    throw err;
  }
  throw new Error('expected the call to fail, but it succeeded');
}
