// Tracing first: its instrumentation must patch @grpc/grpc-js and ioredis before they load
// (lib/tracing.ts).
import { startTracing, stopTracing } from '../../lib/tracing';
startTracing('metadata');
import { constants, readFileSync } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { MetadataServiceService } from '../../gen/baton/v1/metadata_service';
import {
  configSchema,
  ConfigError,
  loadConfig,
  METRICS_CONFIG_PROPERTIES,
  resolveServerOptions,
  SERVER_CONFIG_PROPERTIES,
  type ConfigOf,
} from '../../lib/config';
import { drainOnSignals, METADATA_MAX_RECEIVE_MESSAGE_BYTES, startServer } from '../../lib/grpc-server';
import { createLogger, type Logger } from '../../lib/logger';
import { announceListening, runMain } from '../../lib/main';
import { serveMetricsIfConfigured } from '../../lib/metrics';
import { Catalog } from './catalog';
import { createMetadataService, METADATA_SERVICE_ROLES } from './metadata-service';
import { ModulepathSource } from './modulepath-source';
import { PuppetServerClient } from './puppetserver-client';
import { DEFAULT_PUPPETSERVER_CACHE_TTL_MS, PuppetServerSource } from './puppetserver-source';
import type { TaskSource } from './task-source';

/**
 * baton-metadata: the task catalog service. Configuration: the common server keys plus the
 * source of tasks, exactly one of
 * - `environmentpath`: a local directory of environments (docs/task-format.md §1), each with
 *   Puppet's modulepath (`environment.conf`, `basemodulepath`), or
 * - `puppetserver-url`: an existing Puppet Server's tasks API (docs/task-format.md §3), with
 *   `puppetserver-ca`, `puppetserver-cert`, `puppetserver-key` for its TLS and
 *   `puppetserver-cache-ttl-ms` for how long listings and task details are reused.
 * A missing or unreadable environmentpath, or both sources or neither, is a configuration
 * problem: one line on stderr and exit code 2 (ConfigError), like any other bad setting.
 */

/** Configuration schema of baton-metadata. */
const METADATA_CONFIG_SCHEMA = configSchema({
  ...SERVER_CONFIG_PROPERTIES,
  ...METRICS_CONFIG_PROPERTIES,
  environmentpath: { type: 'string', minLength: 1, description: 'directory holding <environment>/modules/<module>/tasks/' },
  basemodulepath: {
    type: 'string',
    default: '',
    description:
      "':'-separated module directories that $basemodulepath names in an environment's modulepath (environment.conf, default modules:$basemodulepath)",
  },
  'puppetserver-url': {
    type: 'string',
    pattern: '^https?://[^\\s/]+(/\\S*)?$',
    description: 'Puppet Server base URL to read tasks from instead of an environmentpath, e.g. https://puppet:8140',
  },
  'puppetserver-ca': { type: 'string', minLength: 1, description: 'PEM CA bundle that signed the Puppet Server certificate' },
  'puppetserver-cert': { type: 'string', minLength: 1, description: 'PEM client certificate presented to Puppet Server' },
  'puppetserver-key': { type: 'string', minLength: 1, description: 'PEM private key of puppetserver-cert' },
  'puppetserver-cache-ttl-ms': {
    type: 'integer',
    minimum: 0,
    default: DEFAULT_PUPPETSERVER_CACHE_TTL_MS,
    description: 'ms a Puppet Server task listing or detail is reused; 0 asks every time',
  },
});

/** The validated configuration of baton-metadata. */
type MetadataConfig = ConfigOf<typeof METADATA_CONFIG_SCHEMA>;

/** The source the configuration names; a ConfigError unless it names exactly one. */
async function taskSource(config: MetadataConfig, log: Logger): Promise<TaskSource> {
  const url = config['puppetserver-url'];
  if (config.environmentpath && url) throw new ConfigError('configuration: environmentpath and puppetserver-url are both set; expected one source of tasks');
  if (url) {
    if (Boolean(config['puppetserver-cert']) !== Boolean(config['puppetserver-key'])) {
      throw new ConfigError('configuration: puppetserver-cert and puppetserver-key go together; set both or neither');
    }
    const readable = (key: 'puppetserver-ca' | 'puppetserver-cert' | 'puppetserver-key') => {
      const file = config[key];
      if (file) {
        try {
          readFileSync(file);
        } catch (err) {
          throw new ConfigError(
            `configuration: ${key} '${file}' cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); expected a PEM file`,
          );
        }
      }
      return file;
    };
    const client = new PuppetServerClient({
      url,
      caFile: readable('puppetserver-ca'),
      certFile: readable('puppetserver-cert'),
      keyFile: readable('puppetserver-key'),
    });
    log.info({ url: client.base }, `tasks are read from Puppet Server ${client.base}`);
    return new PuppetServerSource(client, { cacheTtlMs: config['puppetserver-cache-ttl-ms'] });
  }
  if (!config.environmentpath)
    throw new ConfigError("configuration: missing required key 'environmentpath' (or 'puppetserver-url'); expected one source of tasks");
  const environmentPath = resolve(config.environmentpath);
  await checkEnvironmentPath(environmentPath);
  const basemodulepath = config.basemodulepath
    .split(':')
    .filter((d) => d !== '')
    .map((d) => resolve(d));
  const catalog = new Catalog({ environmentPath, log, basemodulepath });
  // Scan once before listening: broken tasks are logged at startup, and the first request is fast.
  for (const env of await catalog.environments()) {
    const broken = env.tasks.filter((t) => t.error).length;
    log.info({ environment: env.name, tasks: env.tasks.length, broken }, `environment ${env.name}: ${env.tasks.length} tasks, ${broken} failing to load`);
  }
  return new ModulepathSource(catalog);
}

/** Checks that the environmentpath is a readable directory, as a ConfigError naming it. */
async function checkEnvironmentPath(path: string): Promise<void> {
  const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigError(
      `configuration: environmentpath '${path}' cannot be used (${err.code ?? err.message}); expected a directory holding <environment>/modules/<module>/tasks/`,
    );
  });
  if (!st.isDirectory())
    throw new ConfigError(`configuration: environmentpath '${path}' is not a directory; expected a directory holding <environment>/modules/<module>/tasks/`);
  await access(path, constants.R_OK | constants.X_OK).catch(() => {
    throw new ConfigError(`configuration: environmentpath '${path}' is not readable by this process`);
  });
}

runMain('metadata', async () => {
  const config = loadConfig(METADATA_CONFIG_SCHEMA);
  const log = createLogger('metadata', config['log-level']);
  const source = await taskSource(config, log);

  const server = await startServer({
    ...resolveServerOptions(config),
    services: [
      {
        name: 'baton.v1.MetadataService',
        definition: MetadataServiceService,
        implementation: createMetadataService(source, log),
        roles: METADATA_SERVICE_ROLES,
      },
    ],
    log,
    maxReceiveMessageBytes: METADATA_MAX_RECEIVE_MESSAGE_BYTES,
  });
  // Signal handlers first: a SIGTERM right after the announcement must drain, not kill.
  const stopMetrics = await serveMetricsIfConfigured(config['metrics-listen'], log, 'metadata');
  drainOnSignals(log, server.drain, async () => {
    await stopMetrics();
    await stopTracing();
  });
  announceListening('metadata', server.address);
});
