// Tracing first: its instrumentation must patch @grpc/grpc-js and ioredis before they load (lib/tracing.ts).
import { startTracing, stopTracing } from '../../lib/tracing';
startTracing('scheduler');
import {
  ConfigError,
  configSchema,
  loadConfig,
  METRICS_CONFIG_PROPERTIES,
  REDIS_CONFIG_PROPERTIES,
  resolveServerOptions,
  SERVER_CONFIG_PROPERTIES,
} from '../../lib/config';
import { drainOnSignals } from '../../lib/grpc-server';
import { createLogger } from '../../lib/logger';
import { serveMetricsIfConfigured } from '../../lib/metrics';
import { announceListening, runMain } from '../../lib/main';
import { AccessControl, POLICY_CONFIG_PROPERTY } from '../../lib/access-control';
import { AUDIT_CONFIG_PROPERTY } from '../../lib/audit';
import { DEFAULT_AGENT_LOST_AFTER_S, DEFAULT_RUN_LEASE_S, RUN_REFRESH_MS } from './run-coordinator';
import { startScheduler } from './scheduler-server';
import { DEFAULT_REPLICA_LEASE_MS, REPLICA_NAME_PATTERN } from './replica-lease';
import { DEFAULT_HELLO_RETRY_DELAY_MS, DEFAULT_MAX_CONCURRENT_HELLOS } from './hello-admission';
import { DEFAULT_HEARTBEAT_INTERVAL_MAX_S, DEFAULT_HEARTBEAT_INTERVAL_S, DEFAULT_HEARTBEATS_PER_S } from './heartbeat-interval';
import { RARE_FACT_HOLDERS } from './node-index';
import { PROGRESS_HOLD_MS } from './result-batcher';

/** Configuration of the scheduler process. */
const SCHEDULER_CONFIG_SCHEMA = configSchema(
  {
    ...SERVER_CONFIG_PROPERTIES,
    ...REDIS_CONFIG_PROPERTIES,
    ...METRICS_CONFIG_PROPERTIES,
    'metadata-address': { type: 'string', format: 'host-port', description: 'host:port of the metadata service' },
    'results-address': { type: 'string', format: 'host-port', description: 'host:port of the results service' },
    'agent-metadata-address': {
      type: 'string',
      format: 'host-port',
      description: 'host:port of the metadata service as agents reach it; default metadata-address',
    },
    'heartbeat-interval-s': {
      type: 'integer',
      minimum: 1,
      maximum: 3600,
      default: DEFAULT_HEARTBEAT_INTERVAL_S,
      description: 'seconds between agent heartbeats (the shortest, when heartbeat-interval-max-s is above it)',
    },
    'heartbeat-interval-max-s': {
      type: 'integer',
      minimum: 1,
      maximum: 3600,
      description:
        "longest heartbeat interval an agent is asked for: a replica holding more agents than heartbeats-per-s times heartbeat-interval-s asks for longer intervals, up to this one, to hear about heartbeats-per-s of them a second; a node counts as online while heard within 3 of the longest interval the live replicas' agents hold; equal to heartbeat-interval-s, intervals never grow; default 100 (heartbeat-interval-s when longer)",
    },
    'heartbeats-per-s': {
      type: 'integer',
      minimum: 1,
      maximum: 1000000,
      default: DEFAULT_HEARTBEATS_PER_S,
      description: 'heartbeats per second a replica aims at when heartbeat-interval-max-s lets intervals grow',
    },
    'agent-lost-after-s': {
      type: 'integer',
      minimum: 1,
      maximum: 604800,
      default: DEFAULT_AGENT_LOST_AFTER_S,
      description: 'seconds a node\'s agent may be gone before its runs record it NO_RESPONSE "agent lost" (a later result still replaces it)',
    },
    'run-lease-s': {
      type: 'integer',
      minimum: 1,
      maximum: 3600,
      default: DEFAULT_RUN_LEASE_S,
      description: "seconds a run's coordinator lease lives unless renewed; another scheduler resumes the run after that",
    },
    'run-refresh-s': {
      type: 'integer',
      minimum: 1,
      maximum: 3600,
      default: RUN_REFRESH_MS / 1000,
      description:
        'seconds between checks, while a coordinated run gets no result here, of how far it got in the results service (results recorded through other replicas, a run that ended)',
    },
    'progress-hold-ms': {
      type: 'integer',
      minimum: 0,
      maximum: 60000,
      default: PROGRESS_HOLD_MS,
      description:
        "milliseconds a node's progress (RUNNING once its task started, a note that its agent is away) waits before it is recorded; when the node's final result arrives meanwhile it replaces the progress, so a task that ends within this time is recorded with one write and shows no RUNNING; 0 records progress at once",
    },
    'replica-name': {
      type: 'string',
      pattern: REPLICA_NAME_PATTERN.source,
      description: 'name of this scheduler replica, the prefix of its replica ids; default the host name',
    },
    'replica-lease-s': {
      type: 'integer',
      minimum: 1,
      maximum: 300,
      default: DEFAULT_REPLICA_LEASE_MS / 1000,
      description: "seconds a replica lease lasts without renewal: a dead replica's nodes stop counting as online within this time",
    },
    'max-concurrent-hellos': {
      type: 'integer',
      minimum: 1,
      maximum: 100000,
      default: DEFAULT_MAX_CONCURRENT_HELLOS,
      description:
        'agent Hellos always admitted at once; above this a Hello is admitted while those in hand would be registered within 10 s at the recent rate, else refused with UNAVAILABLE and a retry delay (admission control of reconnect storms)',
    },
    'hello-retry-delay-ms': {
      type: 'integer',
      minimum: 1,
      maximum: 600000,
      default: DEFAULT_HELLO_RETRY_DELAY_MS,
      description: 'retry delay given to an agent whose Hello was refused, in ms (spread over 0.5-1.5 times this)',
    },
    'index-rare-fact-holders': {
      type: 'integer',
      minimum: 1,
      maximum: 4096,
      default: RARE_FACT_HOLDERS,
      description:
        'nodes of an index chunk (4,096 node ids) from which a fact value gets a bitmap of its own; a value held by fewer is a 14-byte record per node in a bucket of rare values (docs/discovery-index.md); 1 gives every value its bitmap',
    },
    ...POLICY_CONFIG_PROPERTY,
    ...AUDIT_CONFIG_PROPERTY,
  },
  ['metadata-address', 'results-address'],
);

runMain('scheduler', async () => {
  const config = loadConfig(SCHEDULER_CONFIG_SCHEMA);
  const configuredMaxS = config['heartbeat-interval-max-s'];
  if (configuredMaxS !== undefined && configuredMaxS < config['heartbeat-interval-s']) {
    throw new ConfigError(`heartbeat-interval-max-s must be at least heartbeat-interval-s (${config['heartbeat-interval-s']}), got ${configuredMaxS}`);
  }
  const maxS = configuredMaxS ?? Math.max(DEFAULT_HEARTBEAT_INTERVAL_MAX_S, config['heartbeat-interval-s']);
  const log = createLogger('scheduler', config['log-level']);
  const access = AccessControl.open({ policyFile: config['policy-file'], auditLog: config['audit-log'], service: 'scheduler', log });
  const scheduler = await startScheduler({
    ...resolveServerOptions(config),
    log,
    redisUrl: config['redis-url'],
    keyPrefix: config['key-prefix'],
    metadataAddress: config['metadata-address'],
    resultsAddress: config['results-address'],
    agentMetadataAddress: config['agent-metadata-address'],
    heartbeatIntervalS: config['heartbeat-interval-s'],
    heartbeatIntervalMaxS: maxS,
    heartbeatsPerS: config['heartbeats-per-s'],
    agentLostAfterS: config['agent-lost-after-s'],
    runLeaseS: config['run-lease-s'],
    runRefreshS: config['run-refresh-s'],
    replicaName: config['replica-name'],
    replicaLeaseMs: config['replica-lease-s'] * 1000,
    rareFactHolders: config['index-rare-fact-holders'],
    resultBatching: { progressHoldMs: config['progress-hold-ms'] },
    helloAdmission: { maxConcurrent: config['max-concurrent-hellos'], retryDelayMs: config['hello-retry-delay-ms'] },
    access,
  });
  access.reloadOnSighup();
  const stopMetrics = await serveMetricsIfConfigured(config['metrics-listen'], log, 'scheduler');
  drainOnSignals(log, scheduler.server.drain, async () => {
    await scheduler.close();
    access.close();
    await stopMetrics();
    await stopTracing();
  });
  announceListening('scheduler', scheduler.address);
});
