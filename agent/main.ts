// Tracing first: its instrumentation must patch @grpc/grpc-js and ioredis before they load (lib/tracing.ts).
import { startTracing, stopTracing } from '../lib/tracing';
startTracing('agent');
import { accessSync, constants } from 'node:fs';
import { ConfigError, loadConfig } from '../lib/config';
import { createLogger } from '../lib/logger';
import { runMain } from '../lib/main';
import { serveMetricsIfConfigured } from '../lib/metrics';
import { Agent } from './agent';
import { AGENT_CONFIG_SCHEMA, ensureStateDir, resolveAgentOptions } from './agent-options';
import { FactsSource } from './facts-source';

/**
 * `baton-agent`: the node agent process. Prints `baton-agent <identity> connected to <address>`
 * on stdout each time the scheduler welcomes it; logs go to stderr. A configuration problem is
 * one line on stderr and exit code 2. SIGTERM or SIGINT ends the stream and exits 0, leaving
 * running tasks alone.
 */

function checkReadable(path: string | undefined, key: string): void {
  if (path === undefined) return;
  try {
    accessSync(path, constants.R_OK);
  } catch (err) {
    throw new ConfigError(`configuration: ${key} ${path} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

runMain('agent', async () => {
  const options = resolveAgentOptions(loadConfig(AGENT_CONFIG_SCHEMA));
  checkReadable(options.tls.ca, 'tls-ca');
  checkReadable(options.tls.cert, 'tls-cert');
  checkReadable(options.tls.key, 'tls-key');
  await ensureStateDir(options.cacheDir, 'cache directory');
  await ensureStateDir(options.spoolDir, 'spool directory');
  const log = createLogger('agent', options.logLevel);
  // Reads the facts and classes files now: a broken one is a configuration error at start.
  const facts = new FactsSource({ identity: options.identity, factsFile: options.factsFile, classesFile: options.classesFile, classes: options.classes, log });
  const agent = new Agent(options, { log, facts });
  await agent.start();
  const stopMetrics = await serveMetricsIfConfigured(options.metricsListen, log, 'agent');
  log.info({ identity: options.identity, scheduler: options.schedulerAddress, cache: options.cacheDir, spool: options.spoolDir }, 'agent started');

  const stop = (signal: string) => {
    log.info({ signal }, 'stopping; running tasks are left running');
    agent
      .stop()
      .then(stopMetrics)
      .then(stopTracing)
      .then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, 'error while stopping');
          process.exit(1);
        },
      );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
});
