import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { joinHostPort, splitHostPort } from './host-port';
import type { Logger } from './logger';

/**
 * Prometheus metrics of every Baton process. Each family below belongs to one piece (or to the
 * pieces using Redis) and only that piece's process exports it: a family exported as zeros by
 * every other target would make an alert such as `baton_connected_agents == 0` fire on each of
 * them. A process serves its families and Node's process metrics on `metrics-listen`
 * (`GET /metrics`); the names are documented here, once, for every piece.
 */

/** The process kinds that serve metrics. */
export type MetricsPiece = 'metadata' | 'scheduler' | 'results' | 'agent';

/** Buckets of the latency histograms, in seconds: 1 ms to 2 minutes. */
export const LATENCY_BUCKETS_S = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** The registry of this process: Node's process metrics, then the families of its piece (exportMetricsOf). */
export const registry = new Registry();
/**
 * How often Node's event-loop delay is sampled for the `baton_nodejs_eventloop_lag_*` families,
 * in ms. Each sample is a wake-up of the process: prom-client's default of 10 ms costs an idle
 * process some 6 ms of CPU a second, every agent of a fleet and every service alike, while a
 * stall still shows in full whenever it spans a sample, as every stall longer than this does.
 */
export const EVENT_LOOP_SAMPLE_MS = 250;

collectDefaultMetrics({ register: registry, prefix: 'baton_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
// Gauges named `_total` break the Prometheus naming rule (promtool: "non-counter metrics should
// not have _total suffix"); the same counts remain, by type, in baton_nodejs_active_{handles,requests,resources}.
for (const name of ['baton_nodejs_active_handles_total', 'baton_nodejs_active_requests_total', 'baton_nodejs_active_resources_total'])
  registry.removeSingleMetric(name);

/** Every metric Baton counts; created unregistered, exported only by the pieces OWNERS names. */
export const metrics = {
  /** scheduler: agents with an open Connect stream. */
  connectedAgents: new Gauge({ name: 'baton_connected_agents', help: 'Agents with an open Connect stream to this scheduler', registers: [] }),
  /** scheduler: heartbeats received from agents. */
  heartbeats: new Counter({ name: 'baton_agent_heartbeats_total', help: 'Heartbeats received from agents', registers: [] }),
  /** results: runs that entered a state, by state (every change: pending, downloading, running, succeeded, failed, cancelled...). */
  runs: new Counter({ name: 'baton_runs_total', help: 'Runs that entered a state, by state', labelNames: ['state'], registers: [] }),
  /** scheduler: final node results reported by agents and stored, by outcome (succeeded, failed, cancelled, ...). */
  nodeResults: new Counter({ name: 'baton_node_results_total', help: 'Final node results recorded, by outcome', labelNames: ['outcome'], registers: [] }),
  /** scheduler: from RunTask received to the run command sent to every node. */
  dispatchLatency: new Histogram({
    name: 'baton_dispatch_latency_seconds',
    help: 'From RunTask received to the run command sent to every node',
    buckets: LATENCY_BUCKETS_S,
    registers: [],
  }),
  /** scheduler: from a node's result arriving to it being stored by the results service. */
  resultLatency: new Histogram({
    name: 'baton_result_latency_seconds',
    help: 'From a node result arriving to it being stored',
    buckets: LATENCY_BUCKETS_S,
    registers: [],
  }),
  /** agent: bytes of task files downloaded from the metadata service. */
  downloadedBytes: new Counter({ name: 'baton_agent_downloaded_bytes_total', help: 'Bytes of task files downloaded', registers: [] }),
  /** agent: task files found in the cache (no download needed) and not found. */
  cacheLookups: new Counter({
    name: 'baton_agent_cache_lookups_total',
    help: 'Task file cache lookups, by result (hit, miss)',
    labelNames: ['result'],
    registers: [],
  }),
  /** scheduler and results (the processes using Redis): connection and command errors. */
  redisErrors: new Counter({ name: 'baton_redis_errors_total', help: 'Redis connection and command errors', registers: [] }),
};

type BatonMetric = (typeof metrics)[keyof typeof metrics];

/** Which families each piece exports. */
export const OWNERS: Record<MetricsPiece, BatonMetric[]> = {
  metadata: [],
  scheduler: [metrics.connectedAgents, metrics.heartbeats, metrics.nodeResults, metrics.dispatchLatency, metrics.resultLatency, metrics.redisErrors],
  results: [metrics.runs, metrics.redisErrors],
  agent: [metrics.downloadedBytes, metrics.cacheLookups],
};

/** Adds the families of `piece` to this process's registry (once each). */
export function exportMetricsOf(piece: MetricsPiece): void {
  for (const metric of OWNERS[piece]) {
    const name = (metric as unknown as { name: string }).name;
    if (!registry.getSingleMetric(name)) registry.registerMetric(metric);
  }
}

/** Serves the registry, with the families of `piece`, at `GET /metrics` on `listen` (`host:port`); resolves with the bound address. */
export async function startMetricsServer(listen: string, log: Logger, piece: MetricsPiece): Promise<{ address: string; close: () => Promise<void> }> {
  exportMetricsOf(piece);
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; metrics are at GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => {
        log.warn({ err: (err as Error).message }, 'could not collect metrics');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('could not collect metrics\n');
      },
    );
  });
  const split = splitHostPort(listen);
  if (!split) throw new Error(`metrics listener: '${listen}' is not host:port`);
  const { host, port } = split;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = server.address();
  const address = bound && typeof bound === 'object' ? joinHostPort(host, bound.port) : listen;
  log.info({ address }, 'metrics served at /metrics');
  return {
    address,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Serves the metrics of `piece` when `listen` is set (the `metrics-listen` key); resolves with the function that stops serving. */
export async function serveMetricsIfConfigured(listen: string | undefined, log: Logger, piece: MetricsPiece): Promise<() => Promise<void>> {
  if (!listen) return () => Promise.resolve();
  const server = await startMetricsServer(listen, log, piece);
  return server.close;
}
