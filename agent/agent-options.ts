import { chmod, mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  configSchema,
  ConfigError,
  INSECURE_CONFIG_PROPERTIES,
  METRICS_CONFIG_PROPERTIES,
  resolveTlsConfig,
  SERVER_CONFIG_PROPERTIES,
  type ConfigOf,
} from '../lib/config';
import { splitHostPortList } from '../lib/host-port';
import type { TlsFiles } from '../lib/tls';
import { IDENTITY_PATTERN } from '../lib/names';
import { certificateFilePeer, describePeer } from '../lib/peer-identity';
import { fqdn } from './facts';
import { DEFAULT_FACTS_POLL_INTERVAL_S } from './facts-source';
import { DEFAULT_MAX_CONCURRENT_TASKS, DEFAULT_MAX_OUTPUT_BYTES, MAX_OUTPUT_BYTES_CEILING } from './task-runner';

/**
 * The agent's configuration: a flat kebab-case schema read by lib/config.ts (defaults, YAML
 * file, `BATON_<KEY>` variables, `--<key>` flags), the type of the loaded values read from it
 * (`AgentConfig`), and `resolveAgentOptions`, which fills in the defaults that depend on the
 * machine (identity, directories) and validates the rest.
 */

/** Seconds between heartbeats when the scheduler's Welcome does not say. */
export const DEFAULT_HEARTBEAT_INTERVAL_S = 15;

/** Seconds an acknowledged run and an unused cache file are kept: 7 days. */
export const DEFAULT_RETENTION_S = 7 * 24 * 3600;

/** Seconds between retention sweeps: 1 hour. */
export const DEFAULT_RETENTION_SWEEP_INTERVAL_S = 3600;

/** Mode of the cache and spool directories: the agent's user and group only. */
export const STATE_DIR_MODE = 0o750;

/** Root of the agent's state when it runs as root. */
export const ROOT_STATE_DIR = '/var/lib/baton';

/** The capabilities every agent announces in its Hello (Choria's agent name). */
export const AGENT_CAPABILITIES = ['bolt_tasks'] as const;

/**
 * The scheduler targets of a `scheduler-address` value: each address of a comma-separated
 * list, or the one `dns:///name:port` target (gRPC resolves it to every replica's address).
 * The configuration has checked the value with the same rule.
 */
export function schedulerTargets(value: string): string[] {
  return splitHostPortList(value) ?? [value];
}

/** The agent's configuration schema (lib/config.ts). */
export const AGENT_CONFIG_SCHEMA = configSchema(
  {
    identity: { type: 'string', pattern: IDENTITY_PATTERN.source, description: 'node identity (certname); default: the FQDN (hostname -f)' },
    'scheduler-address': {
      type: 'string',
      format: 'host-port-list',
      description:
        'host:port of the scheduler, several as a comma-separated list (replicas, tried in a shuffled order), or dns:///name:port for every address a name resolves to',
    },
    'metadata-address': { type: 'string', format: 'host-port', description: "host:port of the metadata service; overrides the scheduler's Welcome" },
    'cache-dir': {
      type: 'string',
      minLength: 1,
      description: `file cache directory; default ${ROOT_STATE_DIR}/cache as root, else ~/.local/state/baton/cache`,
    },
    'spool-dir': { type: 'string', minLength: 1, description: `spool directory; default ${ROOT_STATE_DIR}/spool as root, else ~/.local/state/baton/spool` },
    'facts-file': { type: 'string', minLength: 1, description: 'YAML or JSON mapping of facts merged over the built-in ones' },
    classes: { type: 'string', default: '', pattern: '^[A-Za-z0-9_:,\\s-]*$', description: 'comma-separated Puppet classes of the node' },
    'classes-file': { type: 'string', minLength: 1, description: "Puppet classes file (classes.txt format: one class per line), added to 'classes'" },
    'facts-poll-interval-s': {
      type: 'integer',
      minimum: 1,
      maximum: 86400,
      default: DEFAULT_FACTS_POLL_INTERVAL_S,
      description: 'seconds between checks of the facts and classes files; a change is pushed to the scheduler',
    },
    'scheduler-timeout-s': {
      type: 'integer',
      minimum: 0,
      maximum: 3600,
      default: 0,
      description: 'seconds without any message from the scheduler before reconnecting; 0 means 3 heartbeat intervals',
    },
    'heartbeat-interval-s': {
      type: 'integer',
      minimum: 1,
      maximum: 3600,
      default: DEFAULT_HEARTBEAT_INTERVAL_S,
      description: "seconds between heartbeats when the scheduler's Welcome gives none",
    },
    'max-concurrent-tasks': {
      type: 'integer',
      minimum: 1,
      maximum: 1024,
      default: DEFAULT_MAX_CONCURRENT_TASKS,
      description: 'most tasks running at once on this node; more wait in a queue',
    },
    'max-output-bytes': {
      type: 'integer',
      minimum: 1024,
      maximum: MAX_OUTPUT_BYTES_CEILING,
      default: DEFAULT_MAX_OUTPUT_BYTES,
      description: 'most bytes of stdout, and of stderr, put in a result (the spool keeps all); the cut is marked',
    },
    'retention-s': {
      type: 'integer',
      minimum: 60,
      default: DEFAULT_RETENTION_S,
      description: 'acknowledged runs in the spool and cache files unused for this many seconds are removed',
    },
    'retention-sweep-interval-s': {
      type: 'integer',
      minimum: 1,
      default: DEFAULT_RETENTION_SWEEP_INTERVAL_S,
      description: 'seconds between retention sweeps',
    },
    'log-level': SERVER_CONFIG_PROPERTIES['log-level'],
    ...METRICS_CONFIG_PROPERTIES,
    'tls-ca': { type: 'string', minLength: 1, description: 'PEM CA bundle the scheduler and metadata service certificates are checked against' },
    'tls-cert': {
      type: 'string',
      minLength: 1,
      description: 'PEM client certificate presented to the services (`baton pki issue agent IDENTITY`); its CN must be the identity',
    },
    'tls-key': { type: 'string', minLength: 1, description: 'PEM private key of tls-cert' },
    ...INSECURE_CONFIG_PROPERTIES,
  },
  ['scheduler-address'],
);

/** The configuration as loaded by `loadConfig(AGENT_CONFIG_SCHEMA)`. */
export type AgentConfig = ConfigOf<typeof AGENT_CONFIG_SCHEMA>;

/** The agent's options with every default filled in. */
export interface ResolvedAgentOptions {
  identity: string;
  schedulerAddress: string;
  /** Overrides the Welcome's metadata address when set. */
  metadataAddress?: string;
  cacheDir: string;
  spoolDir: string;
  factsFile?: string;
  classes: string[];
  classesFile?: string;
  factsPollIntervalS: number;
  /** Seconds of scheduler silence before reconnecting; 0 means 3 heartbeat intervals. */
  schedulerTimeoutS: number;
  /** Fallback heartbeat interval in seconds. */
  heartbeatIntervalS: number;
  maxConcurrentTasks: number;
  maxOutputBytes: number;
  retentionS: number;
  retentionSweepIntervalS: number;
  logLevel: string;
  /** host:port serving Prometheus metrics; off when unset. */
  metricsListen?: string;
  tls: TlsFiles;
}

/** The directory the agent keeps its state under: root's or the user's XDG state directory. */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (process.getuid?.() === 0) return ROOT_STATE_DIR;
  const xdg = env.XDG_STATE_HOME;
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.local', 'state'), 'baton');
}

/** Fills in machine-dependent defaults and validates what the schema cannot; throws ConfigError. */
export function resolveAgentOptions(config: AgentConfig, env: NodeJS.ProcessEnv = process.env): ResolvedAgentOptions {
  const identity = config.identity ?? fqdn();
  if (!IDENTITY_PATTERN.test(identity)) {
    throw new ConfigError(`configuration: identity '${identity}' (the host's FQDN) does not match ${IDENTITY_PATTERN.source}; set --identity`);
  }
  // Mutual TLS unless `insecure` (the default everywhere but `baton dev`): the agent's certificate
  // is its identity towards the scheduler.
  const tls = resolveTlsConfig(config);
  if (tls.cert) checkOwnCertificate(tls.cert, identity);
  const state = defaultStateDir(env);
  return {
    identity,
    schedulerAddress: config['scheduler-address'],
    metadataAddress: config['metadata-address'],
    cacheDir: config['cache-dir'] ?? join(state, 'cache'),
    spoolDir: config['spool-dir'] ?? join(state, 'spool'),
    factsFile: config['facts-file'],
    classes: config.classes
      .split(',')
      .map((c) => c.trim())
      .filter((c) => c.length > 0),
    classesFile: config['classes-file'],
    factsPollIntervalS: config['facts-poll-interval-s'],
    schedulerTimeoutS: config['scheduler-timeout-s'],
    heartbeatIntervalS: config['heartbeat-interval-s'],
    maxConcurrentTasks: config['max-concurrent-tasks'],
    maxOutputBytes: config['max-output-bytes'],
    retentionS: config['retention-s'],
    retentionSweepIntervalS: config['retention-sweep-interval-s'],
    logLevel: config['log-level'],
    metricsListen: config['metrics-listen'],
    tls,
  };
}

/**
 * An agent is the node its certificate names: the scheduler refuses a Hello
 * whose identity is not the certificate's CN, and an agent certificate is needed for the agent
 * stream. Checked at start, so a mismatch is one line instead of a refusal on every reconnect.
 */
function checkOwnCertificate(certFile: string, identity: string): void {
  let peer;
  try {
    peer = certificateFilePeer(certFile);
  } catch (err) {
    throw new ConfigError(
      `configuration: tls-cert '${certFile}' is not a PEM certificate (${(err as Error).message}); expected one issued by \`baton pki issue agent ${identity}\``,
    );
  }
  if (peer.role !== 'agent' || peer.name !== identity) {
    const what = peer.role === 'agent' ? `${describePeer(peer)} is for another node` : `${describePeer(peer)} is not an agent certificate (OU=baton-agent)`;
    throw new ConfigError(
      `configuration: tls-cert '${certFile}': ${what}, but this agent's identity is '${identity}'; issue one with \`baton pki issue agent ${identity}\` or set --identity`,
    );
  }
}

/** Creates a state directory (and its parents) and makes it mode 0750; throws ConfigError naming it. */
export async function ensureStateDir(dir: string, what: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: STATE_DIR_MODE });
    await chmod(dir, STATE_DIR_MODE);
  } catch (err) {
    throw new ConfigError(`configuration: cannot create ${what} ${dir}: ${(err as Error).message}`);
  }
}
