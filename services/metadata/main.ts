import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { MetadataServiceService } from '../../gen/baton/v1/metadata_service';
import { ConfigError, loadConfig, SERVER_CONFIG_PROPERTIES, type ConfigSchema, type ServerConfig } from '../../lib/config';
import { drainOnSignals, startServer } from '../../lib/grpc-server';
import { createLogger } from '../../lib/logger';
import { announceListening, runMain } from '../../lib/main';
import { Catalog } from './catalog';
import { createMetadataService } from './metadata-service';

/**
 * baton-metadata: the task catalog service. Configuration: the common server keys plus
 * `environmentpath`. A missing or unreadable environmentpath is a configuration problem: one
 * line on stderr and exit code 2 (ConfigError), like any other bad setting.
 */

/** Configuration schema of baton-metadata. */
const METADATA_CONFIG_SCHEMA: ConfigSchema = {
  type: 'object',
  properties: {
    ...SERVER_CONFIG_PROPERTIES,
    environmentpath: { type: 'string', minLength: 1, description: 'directory holding <environment>/modules/<module>/tasks/' },
  },
  required: ['environmentpath'],
  additionalProperties: false,
};

/** The validated configuration of baton-metadata. */
interface MetadataConfig extends ServerConfig {
  environmentpath: string;
}

/** Checks that the environmentpath is a readable directory, as a ConfigError naming it. */
async function checkEnvironmentPath(path: string): Promise<void> {
  const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigError(`configuration: environmentpath '${path}' cannot be used (${err.code ?? err.message}); expected a directory holding <environment>/modules/<module>/tasks/`);
  });
  if (!st.isDirectory()) throw new ConfigError(`configuration: environmentpath '${path}' is not a directory; expected a directory holding <environment>/modules/<module>/tasks/`);
  await access(path, constants.R_OK | constants.X_OK).catch(() => {
    throw new ConfigError(`configuration: environmentpath '${path}' is not readable by this process`);
  });
}

runMain('metadata', async () => {
  const config = loadConfig<MetadataConfig>(METADATA_CONFIG_SCHEMA);
  const log = createLogger('metadata', config['log-level']);
  const environmentPath = resolve(config.environmentpath);
  await checkEnvironmentPath(environmentPath);

  const catalog = new Catalog({ environmentPath, log });
  // Scan once before listening: broken tasks are logged at startup, and the first request is fast.
  for (const env of await catalog.environments()) {
    const broken = env.tasks.filter((t) => t.error).length;
    log.info({ environment: env.name, tasks: env.tasks.length, broken }, `environment ${env.name}: ${env.tasks.length} tasks, ${broken} failing to load`);
  }

  const server = await startServer({
    listen: config.listen,
    services: [{ name: 'baton.v1.MetadataService', definition: MetadataServiceService, implementation: createMetadataService(catalog, log) }],
    log,
    tls: { cert: config['tls-cert'], key: config['tls-key'], ca: config['tls-ca'] },
  });
  // Signal handlers first: a SIGTERM right after the announcement must drain, not kill.
  drainOnSignals(log, server.drain);
  announceListening('metadata', server.address);
});
