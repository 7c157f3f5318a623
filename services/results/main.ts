import { ResultsServiceService } from '../../gen/baton/v1/results_service';
import { loadConfig, REDIS_CONFIG_PROPERTIES, SERVER_CONFIG_PROPERTIES, type ConfigSchema, type ServerConfig, type RedisConfig } from '../../lib/config';
import { drainOnSignals, startServer } from '../../lib/grpc-server';
import { createLogger } from '../../lib/logger';
import { announceListening, runMain } from '../../lib/main';
import { closeRedis, createRedis } from '../../lib/redis';
import { createResultsService } from './results-service';

/** Full proto name of the service, for health checking. */
const RESULTS_SERVICE_NAME = 'baton.v1.ResultsService';

/** Configuration keys of baton-results. */
const CONFIG_SCHEMA: ConfigSchema = {
  type: 'object',
  properties: { ...SERVER_CONFIG_PROPERTIES, ...REDIS_CONFIG_PROPERTIES },
  additionalProperties: false,
};

/** The loaded configuration. */
type ResultsConfig = ServerConfig & RedisConfig;

runMain('results', async () => {
  const config = loadConfig<ResultsConfig>(CONFIG_SCHEMA);
  const log = createLogger('results', config['log-level']);
  const redis = createRedis({ url: config['redis-url'], log, connectionName: 'baton-results' });
  const service = createResultsService({ redis, keyPrefix: config['key-prefix'], log });
  const server = await startServer({
    listen: config.listen,
    services: [{ name: RESULTS_SERVICE_NAME, definition: ResultsServiceService, implementation: service.implementation }],
    log,
    tls: { cert: config['tls-cert'], key: config['tls-key'], ca: config['tls-ca'] },
  });
  server.onDrain(() => service.endStreams());
  // Signal handlers first: a SIGTERM right after the announcement must drain, not kill.
  drainOnSignals(log, () => server.drain(), () => closeRedis(redis));
  announceListening('results', server.address);
});
