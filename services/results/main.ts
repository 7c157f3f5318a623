// Tracing first: its instrumentation must patch @grpc/grpc-js and ioredis before they load (lib/tracing.ts).
import { startTracing, stopTracing } from '../../lib/tracing';
startTracing('results');
import { ResultsServiceService } from '../../gen/baton/v1/results_service';
import { configSchema, loadConfig, METRICS_CONFIG_PROPERTIES, REDIS_CONFIG_PROPERTIES, resolveServerOptions, SERVER_CONFIG_PROPERTIES } from '../../lib/config';
import { drainOnSignals, startServer } from '../../lib/grpc-server';
import { createLogger } from '../../lib/logger';
import { announceListening, runMain } from '../../lib/main';
import { serveMetricsIfConfigured } from '../../lib/metrics';
import { closeRedis, createRedis } from '../../lib/redis';
import { AccessControl, POLICY_CONFIG_PROPERTY } from '../../lib/access-control';
import { AUDIT_CONFIG_PROPERTY } from '../../lib/audit';
import { ReadAccess } from './read-access';
import { createResultsService, RESULTS_SERVICE_ROLES } from './results-service';
import { DEFAULT_RETENTION_SWEEP_INTERVAL_S, DEFAULT_RUN_RETENTION_S } from './run-retention';

/** Full proto name of the service, for health checking. */
const RESULTS_SERVICE_NAME = 'baton.v1.ResultsService';

/** Configuration keys of baton-results. */
const CONFIG_SCHEMA = configSchema({
  ...SERVER_CONFIG_PROPERTIES,
  ...REDIS_CONFIG_PROPERTIES,
  ...METRICS_CONFIG_PROPERTIES,
  ...POLICY_CONFIG_PROPERTY,
  ...AUDIT_CONFIG_PROPERTY,
  'own-results-only': {
    type: 'boolean',
    default: false,
    description:
      "a caller reads only the runs it started (GetRunStatus, WatchRunEvents, ListRuns), as Choria's own_status_only; services reading for an operator are checked as that operator",
  },
  'run-retention-s': {
    type: 'integer',
    minimum: 0,
    default: DEFAULT_RUN_RETENTION_S,
    description: 'seconds a run is kept after it ended (never-ended runs: after creation), an integer >= 0; 0 keeps runs forever',
  },
  'retention-sweep-interval-s': {
    type: 'integer',
    minimum: 1,
    default: DEFAULT_RETENTION_SWEEP_INTERVAL_S,
    description: 'seconds between two sweeps removing expired runs, an integer >= 1',
  },
});

runMain('results', async () => {
  const config = loadConfig(CONFIG_SCHEMA);
  const log = createLogger('results', config['log-level']);
  const access = AccessControl.open({ policyFile: config['policy-file'], auditLog: config['audit-log'], service: 'results', log });
  const redis = createRedis({ url: config['redis-url'], log, connectionName: 'baton-results' });
  const service = createResultsService({
    redis,
    keyPrefix: config['key-prefix'],
    log,
    runRetentionS: config['run-retention-s'],
    retentionSweepIntervalS: config['retention-sweep-interval-s'],
    readAccess: new ReadAccess(access, config['own-results-only']),
  });
  const server = await startServer({
    ...resolveServerOptions(config),
    services: [{ name: RESULTS_SERVICE_NAME, definition: ResultsServiceService, implementation: service.implementation, roles: RESULTS_SERVICE_ROLES }],
    log,
  });
  server.onDrain(() => {
    service.retention.stop();
    service.endStreams();
  });
  // Signal handlers first: a SIGTERM right after the announcement must drain, not kill.
  const stopMetrics = await serveMetricsIfConfigured(config['metrics-listen'], log, 'results');
  access.reloadOnSighup();
  drainOnSignals(
    log,
    () => server.drain(),
    async () => {
      access.close();
      await closeRedis(redis);
      await stopMetrics();
      await stopTracing();
    },
  );
  service.retention.start();
  announceListening('results', server.address);
});
