import { accessSync, constants, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import Ajv, { type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_CALLER_REQUEST_BURST, DEFAULT_CALLER_REQUESTS_PER_S, type CallerBudgetOptions } from './caller-budget';
import { HOST_PORT_EXPECTED, HOST_PORT_LIST_EXPECTED, isHostPort, splitHostPortList } from './host-port';
import { isRedisUrl, REDIS_URL_EXPECTED } from './redis-url';
import type { TlsFiles } from './tls';

/**
 * Configuration of every Baton process. Keys are flat kebab-case names (`redis-url`). Sources,
 * lowest precedence first: defaults in the schema, a YAML file (`--config PATH` or
 * `BATON_CONFIG`), `BATON_<KEY>` environment variables (`BATON_REDIS_URL`), command-line flags
 * (`--redis-url`). The merged result is validated with ajv; the first problem becomes one
 * ConfigError line naming the key, where the value came from, and what was expected.
 */

/**
 * Formats of string keys beyond JSON Schema's own: `host-port` is one address (lib/host-port.ts),
 * `host-port-list` several separated by commas or one `dns:///host:port` target, `redis-url` one
 * Redis server or a Redis Cluster's seed nodes (lib/redis-url.ts).
 */
export type ConfigFormat = 'host-port' | 'host-port-list' | 'redis-url';

/** The JSON Schema of one configuration key. */
export type ConfigProperty = { type: 'string' | 'integer' | 'number' | 'boolean'; default?: unknown; description: string; format?: ConfigFormat } & Record<
  string,
  unknown
>;

/** Configuration keys by name: a process's, or a group several processes share. */
export type ConfigProperties = Record<string, ConfigProperty>;

/**
 * A JSON Schema of a flat configuration object: the one definition of a process's settings.
 * Made with `configSchema`, which keeps the literal types `ConfigOf` reads the TypeScript type from.
 */
export interface ConfigSchema<P extends ConfigProperties = ConfigProperties, R extends readonly string[] = readonly string[]> {
  type: 'object';
  properties: P;
  required?: R;
  additionalProperties: false;
}

/** The value type of one key: its enum's members, else its JSON type. */
type ValueOf<P> = P extends { enum: readonly (infer E)[] } ? E : P extends { type: 'string' } ? string : P extends { type: 'boolean' } ? boolean : number;

/** Keys that always have a value once loaded: those with a default, and the required ones. */
type GivenKeys<P extends ConfigProperties, R extends string> = {
  [K in keyof P & string]: P[K] extends { default: unknown } ? K : K extends R ? K : never;
}[keyof P & string];

/** The loaded values of configuration keys `P`, of which `R` are required. */
export type ConfigValues<P extends ConfigProperties, R extends string = never> = {
  [K in GivenKeys<P, R>]: ValueOf<P[K]>;
} & {
  [K in Exclude<keyof P & string, GivenKeys<P, R>>]?: ValueOf<P[K]>;
} extends infer O
  ? { [K in keyof O]: O[K] }
  : never;

/** The TypeScript type of a configuration loaded by `loadConfig(schema)`, read from the schema. */
export type ConfigOf<S extends ConfigSchema> = ConfigValues<S['properties'], S extends ConfigSchema<ConfigProperties, infer R> ? R[number] : never>;

/** The schema of a process's configuration: `properties`, of which `required` must be set; no other key is accepted. */
export function configSchema<const P extends ConfigProperties, const R extends readonly (keyof P & string)[] = []>(
  properties: P,
  required?: R,
): ConfigSchema<P, R> {
  return required && required.length > 0
    ? { type: 'object', properties, required, additionalProperties: false }
    : { type: 'object', properties, additionalProperties: false };
}

/** Where configuration values are read from; defaults to this process's argv and environment. */
export interface ConfigSources {
  argv?: string[];
  env?: NodeJS.ProcessEnv;
}

/** A configuration problem, meant to be printed as one line. */
export class ConfigError extends Error {}

const ajv = new Ajv({ allErrors: false, coerceTypes: true, useDefaults: true, strict: true });
ajv.addFormat('host-port', { type: 'string', validate: isHostPort });
ajv.addFormat('host-port-list', { type: 'string', validate: (v: string) => splitHostPortList(v) !== undefined });
ajv.addFormat('redis-url', { type: 'string', validate: isRedisUrl });

/** What each format's value must look like, in its error message. */
const FORMAT_EXPECTED: Record<ConfigFormat, { is: string; expected: string }> = {
  'host-port': { is: 'host:port', expected: HOST_PORT_EXPECTED },
  'host-port-list': { is: 'host:port, a comma-separated list of them or dns:///host:port', expected: HOST_PORT_LIST_EXPECTED },
  'redis-url': { is: 'a Redis URL', expected: REDIS_URL_EXPECTED },
};

function envName(key: string): string {
  return 'BATON_' + key.toUpperCase().replace(/-/g, '_');
}

function describe(err: ErrorObject, schema: ConfigSchema, values: Record<string, unknown>): string {
  if (err.keyword === 'additionalProperties') return `unknown key '${String(err.params.additionalProperty)}'`;
  if (err.keyword === 'required') return `missing required key '${String(err.params.missingProperty)}'`;
  const key = err.instancePath.replace(/^\//, '');
  const prop = schema.properties[key] as ConfigProperty | undefined;
  const format = err.keyword === 'format' ? FORMAT_EXPECTED[err.params.format as ConfigFormat] : undefined;
  if (format) return `${key} '${String(values[key])}' is not ${format.is}${prop ? ` (${prop.description})` : ''}; ${format.expected}`;
  return `${key} ${err.message ?? 'is invalid'}${prop ? ` (${prop.description})` : ''}`;
}

/** Loads, merges and validates the configuration of one process; its type follows from the schema. */
export function loadConfig<S extends ConfigSchema>(schema: S, sources: ConfigSources = {}): ConfigOf<S> {
  const argv = sources.argv ?? process.argv.slice(2);
  const env = sources.env ?? process.env;
  const keys = Object.keys(schema.properties);
  let flags: Record<string, string | boolean | undefined>;
  try {
    const options: Record<string, { type: 'string' | 'boolean' }> = { config: { type: 'string' } };
    for (const k of keys) options[k] = { type: schema.properties[k].type === 'boolean' ? 'boolean' : 'string' };
    flags = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new ConfigError((err as Error).message.split('\n')[0]);
  }

  const merged: Record<string, unknown> = {};
  const origin: Record<string, string> = {};
  const file = (flags.config as string | undefined) ?? env.BATON_CONFIG;
  if (file) {
    let doc: unknown;

    try {
      doc = parseYaml(readFileSync(file, 'utf8')) ?? {};
    } catch (err) {
      throw new ConfigError(`config file ${file}: ${(err as Error).message.split('\n')[0]}`);
    }
    if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`config file ${file}: expected a mapping of keys to values`);
    for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
      merged[k] = v;
      origin[k] = `config file ${file}`;
    }
  }
  for (const k of keys) {
    const v = env[envName(k)];
    if (v !== undefined && v !== '') {
      merged[k] = v;
      origin[k] = `environment variable ${envName(k)}`;
    }
  }
  for (const k of keys) {
    if (flags[k] !== undefined) {
      merged[k] = flags[k];
      origin[k] = `flag --${k}`;
    }
  }

  const validate = ajv.compile(schema);
  if (!validate(merged)) {
    const err = validate.errors![0];
    const key = err.instancePath.replace(/^\//, '') || String(err.params.additionalProperty ?? '');
    const from = origin[key] ? ` [from ${origin[key]}]` : '';
    throw new ConfigError(`configuration: ${describe(err, schema, merged)}${from}`);
  }
  // ajv checked every key against the schema ConfigOf<S> is read from.
  return merged as ConfigOf<S>;
}

/**
 * The `insecure` key of every process that speaks gRPC (TLS is on by default outside `baton dev`,
 * since a plaintext stack lets anyone pass for an operator or an agent). Without it a process
 * refuses to start unless tls-cert, tls-key and tls-ca are set.
 */
export const INSECURE_CONFIG_PROPERTIES = {
  insecure: { type: 'boolean', default: false, description: 'plaintext without certificates; only for local development' },
} as const;

/** Common keys of every gRPC server process: where to listen, logging and TLS. */
export const SERVER_CONFIG_PROPERTIES = {
  listen: { type: 'string', default: '127.0.0.1:0', format: 'host-port', description: 'host:port to listen on; port 0 picks a free one' },
  'health-listen': {
    type: 'string',
    format: 'host-port',
    description: 'host:port of a plaintext listener serving grpc.health.v1.Health only (for probes without TLS, like the kubelet grpc probe); default none',
  },
  'log-level': { type: 'string', default: 'info', enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], description: 'log level' },
  'tls-cert': {
    type: 'string',
    minLength: 1,
    description: 'PEM certificate of this service (`baton pki issue service NAME`); also its client certificate towards other services',
  },
  'tls-key': { type: 'string', minLength: 1, description: 'PEM private key of tls-cert' },
  'tls-ca': {
    type: 'string',
    minLength: 1,
    description: 'PEM CA bundle; clients must present a certificate it signed, and other services are checked against it',
  },
  ...INSECURE_CONFIG_PROPERTIES,
  'caller-requests-per-s': {
    type: 'number',
    minimum: 0,
    default: DEFAULT_CALLER_REQUESTS_PER_S,
    description: 'requests per second one operator or agent certificate may make to this service, sustained; 0 turns the limit off',
  },
  'caller-request-burst': {
    type: 'integer',
    minimum: 1,
    default: DEFAULT_CALLER_REQUEST_BURST,
    description: 'requests one operator or agent certificate may make at once above caller-requests-per-s',
  },
} as const;

/** The loaded values of SERVER_CONFIG_PROPERTIES. */
export type ServerConfig = ConfigValues<typeof SERVER_CONFIG_PROPERTIES>;

/** The loaded TLS keys of a process: its certificate, key, CA, or `insecure`. */
export type TlsConfig = Pick<ServerConfig, 'insecure' | 'tls-cert' | 'tls-key' | 'tls-ca'>;

/** The request budget of each caller (lib/caller-budget.ts) that a server's configuration sets. */
function callerBudgetConfig(config: Pick<ServerConfig, 'caller-requests-per-s' | 'caller-request-burst'>): CallerBudgetOptions {
  return { requestsPerS: config['caller-requests-per-s'], burst: config['caller-request-burst'] };
}

const TLS_KEYS = ['tls-cert', 'tls-key', 'tls-ca'] as const;

/**
 * The TLS files of a process, checked: all three of tls-cert, tls-key and tls-ca (mutual TLS
 * always: a server without a CA would accept any caller), or `insecure: true` and none
 * of them, which gives `{}` (plaintext). Anything else, or an unreadable file, is one ConfigError line.
 */
export function resolveTlsConfig(config: TlsConfig): TlsFiles {
  const set = TLS_KEYS.filter((k) => config[k] !== undefined);
  if (config.insecure) {
    if (set.length > 0) {
      throw new ConfigError(
        `configuration: insecure is true but ${set.join(', ')} ${set.length === 1 ? 'is' : 'are'} set; expected either certificates (tls-cert, tls-key, tls-ca) or insecure, not both`,
      );
    }
    return {};
  }
  const missing = TLS_KEYS.filter((k) => config[k] === undefined);
  if (missing.length > 0) {
    throw new ConfigError(
      `configuration: missing ${missing.join(', ')}; TLS needs tls-cert, tls-key and tls-ca (make them with \`baton pki init\` and \`baton pki issue\`), or set insecure: true (--insecure, BATON_INSECURE=true) for plaintext local development`,
    );
  }
  for (const k of TLS_KEYS) {
    try {
      accessSync(config[k]!, constants.R_OK);
    } catch (err) {
      throw new ConfigError(
        `configuration: ${k} '${config[k]}' cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); expected a PEM file`,
      );
    }
  }
  return { cert: config['tls-cert'], key: config['tls-key'], ca: config['tls-ca'] };
}

/** The options every gRPC server takes from SERVER_CONFIG_PROPERTIES (lib/grpc-server.ts `startServer`); throws ConfigError. */
export function resolveServerOptions(config: ServerConfig): { listen: string; healthListen?: string; tls: TlsFiles; callerBudget: CallerBudgetOptions } {
  return { listen: config.listen, healthListen: config['health-listen'], tls: resolveTlsConfig(config), callerBudget: callerBudgetConfig(config) };
}

/** Config key of every process that serves Prometheus metrics (lib/metrics.ts): off unless set. */
export const METRICS_CONFIG_PROPERTIES = {
  'metrics-listen': { type: 'string', format: 'host-port', description: 'host:port serving Prometheus metrics at /metrics; off when unset' },
} as const;

/** Common keys of processes that use Redis. */
export const REDIS_CONFIG_PROPERTIES = {
  'redis-url': {
    type: 'string',
    default: 'redis://127.0.0.1:6379',
    format: 'redis-url',
    description: 'Redis URL, redis://host:port[/db]; a Redis Cluster as redis-cluster://host:port,host:port (docs/redis-cluster.md)',
  },
  'key-prefix': { type: 'string', default: 'baton', pattern: '^[A-Za-z0-9_.-]+$', description: 'prefix of every Redis key' },
} as const;
