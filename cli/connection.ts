import { userInfo } from 'node:os';
import { Metadata, status } from '@grpc/grpc-js';
import type { Command } from 'commander';
import { MetadataServiceClient } from '../gen/baton/v1/metadata_service';
import { ResultsServiceClient } from '../gen/baton/v1/results_service';
import { SchedulerServiceClient } from '../gen/baton/v1/scheduler_service';
import { makeClient, unary, type UnaryOptions } from '../lib/grpc-client';
import { isServiceError } from '../lib/errors';
import { HOST_PORT_EXPECTED, isHostPort } from '../lib/host-port';
import { CALLER_METADATA_KEY, certificateFilePeer } from '../lib/peer-identity';
import { probeTls, type TlsFiles } from '../lib/tls';
import { CliError, EXIT } from './cli-error';
import { resolveSetting, SETTING_KEYS, settingEnvName, type Setting, type SettingKey } from './cli-settings';
import { liveDevRecords, type DevRecord } from './dev-records';

/** Which service addresses the CLI talks to. */
export interface ServiceAddresses {
  scheduler: string;
  metadata: string;
  results: string;
}

/** Options every command that talks to the services takes. */
export interface ConnectionOptions extends Partial<ServiceAddresses> {
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  json?: boolean;
  verbose?: boolean;
  /** False with `--no-color`. */
  color: boolean;
}

/**
 * Adds `--json`, `--no-color`, `-v` (only where it shows more: `verbose`), the address flags of
 * the services the command talks to (`--scheduler`, `--metadata`, `--results`) and the TLS file
 * flags to a command, the connection flags under their own heading. `tasks status` leaves out
 * `--metadata`: there it is mco's metadata view.
 */
export function addConnectionOptions(
  command: Command,
  jsonDescription: string,
  services: Array<keyof ServiceAddresses> = ['scheduler', 'metadata', 'results'],
  verbose = false,
): Command {
  command.option('--json', jsonDescription);
  if (verbose) command.option('-v, --verbose', 'show every node, not only failures');
  command.option('--no-color', 'no colour').optionsGroup('Connection:');
  const names: Record<keyof ServiceAddresses, string> = { scheduler: 'scheduler', metadata: 'metadata service', results: 'results service' };
  for (const s of services) command.option(`--${s} <HOST:PORT>`, `${names[s]} address`);
  return command
    .option('--tls-ca <FILE>', 'CA certificate (PEM) to check the services with; enables TLS')
    .option('--tls-cert <FILE>', 'client certificate (PEM)')
    .option('--tls-key <FILE>', 'client key (PEM)')
    .optionsGroup('Options:');
}

/** The flags that say where the services are and which TLS files to use. */
export type ConnectionFlags = Partial<ServiceAddresses> & Pick<ConnectionOptions, 'tlsCa' | 'tlsCert' | 'tlsKey'>;

/** Every setting the CLI resolved, and the `baton dev` stack it took them from, if any. */
export interface ConnectionSettings {
  settings: Record<SettingKey, Setting>;
  /** The running `baton dev` stack in use: only when no address was given by a flag, BATON_* or the config file. */
  stack: DevRecord | undefined;
  /** How many other `baton dev` stacks are running (the newest is the one used). */
  otherStacks: number;
}

const ADDRESS_KEYS = ['scheduler', 'metadata', 'results'] as const;

function flagOf(key: SettingKey, flags: ConnectionFlags): string | undefined {
  switch (key) {
    case 'tls-ca':
      return flags.tlsCa;
    case 'tls-cert':
      return flags.tlsCert;
    case 'tls-key':
      return flags.tlsKey;
    default:
      return flags[key];
  }
}

/**
 * Resolves every setting: flags, then `BATON_*`, then the config file. A running `baton dev`
 * is used only when none of the three addresses was given that way, and then as a whole: its
 * addresses and its TLS files (or its plaintext) together, a TLS flag or BATON_TLS_* still
 * replacing one file (to act as operator bob), the config file's TLS files not mixed in.
 */
export function connectionSettings(flags: ConnectionFlags): ConnectionSettings {
  const settings = {} as Record<SettingKey, Setting>;
  for (const key of ADDRESS_KEYS) settings[key] = resolveSetting(key, flagOf(key, flags));
  const stacks = ADDRESS_KEYS.every((k) => settings[k].value === undefined) ? liveDevRecords() : [];
  const stack = stacks[0];
  const from = stack ? `running 'baton dev' (pid ${stack.pid}, ${stack.file})` : '';
  for (const key of SETTING_KEYS) {
    if ((ADDRESS_KEYS as readonly string[]).includes(key)) {
      if (stack) settings[key] = { value: stack[key], source: from };
    } else if (stack) {
      settings[key] = resolveSetting(key, flagOf(key, flags), undefined, false);
      if (settings[key].value === undefined) settings[key] = { value: stack[key], source: stack[key] ? from : `${from}: plaintext` };
    } else {
      settings[key] = resolveSetting(key, flagOf(key, flags));
    }
  }
  return { settings, stack, otherStacks: Math.max(0, stacks.length - 1) };
}

/** Checks one resolved service address: none, or not HOST:PORT, is a usage error. */
function checkedAddress(key: keyof ServiceAddresses, { value, source }: Setting): string {
  if (!value)
    throw new CliError(
      `no ${key} address: pass --${key} HOST:PORT, set ${settingEnvName(key)}, put '${key}: HOST:PORT' in the config file, or start a local stack with 'baton dev'`,
    );
  if (!isHostPort(value)) throw new CliError(`${key} address '${value}' (from ${source}) is not host:port; ${HOST_PORT_EXPECTED}`);
  return value;
}

/** `user=<login name>`: who this CLI says it is on a plaintext connection. */
function localCaller(): string {
  return `user=${userInfo().username}`;
}

/**
 * The caller id sent with every run: `user=<login name>`. Services believe it only on a
 * plaintext (`insecure`) connection; with TLS they take `cert=<CN>` from the client certificate
 * (lib/peer-identity.ts callerOf) and ignore it, see Clients.callerId.
 */
export function callerMetadata(): Metadata {
  const md = new Metadata();
  md.set(CALLER_METADATA_KEY, localCaller());
  return md;
}

/** Clients of the three services, each made (and its address resolved) on first use. */
export class Clients {
  private made: Partial<{ scheduler: SchedulerServiceClient; metadata: MetadataServiceClient; results: ResultsServiceClient }> = {};

  private resolved: ConnectionSettings | undefined;

  constructor(private readonly flags: ConnectionFlags) {}

  /** The settings in use (resolved once, on first use). */
  get settings(): ConnectionSettings {
    return (this.resolved ??= connectionSettings(this.flags));
  }

  private get tls(): TlsFiles {
    const s = this.settings.settings;
    return { ca: s['tls-ca'].value, cert: s['tls-cert'].value, key: s['tls-key'].value };
  }

  /**
   * The caller id the services record for this CLI's runs: `cert=<CN>` of its client
   * certificate with TLS (lib/peer-identity.ts callerOf), else the `user=<login name>` it sends.
   */
  callerId(): string {
    const cert = this.tls.cert;
    return cert ? `cert=${certificateFilePeer(cert).name}` : localCaller();
  }

  /** The address a client of `key` was (or would be) made for, for error messages. */
  address(key: keyof ServiceAddresses): string {
    return checkedAddress(key, this.settings.settings[key]);
  }

  get scheduler(): SchedulerServiceClient {
    return (this.made.scheduler ??= makeClient(SchedulerServiceClient, this.address('scheduler'), this.tls));
  }

  get metadata(): MetadataServiceClient {
    return (this.made.metadata ??= makeClient(MetadataServiceClient, this.address('metadata'), this.tls));
  }

  get results(): ResultsServiceClient {
    return (this.made.results ??= makeClient(ResultsServiceClient, this.address('results'), this.tls));
  }

  /**
   * A unary call to one of the services; UNAVAILABLE and DEADLINE_EXCEEDED become one line
   * naming the service and the address tried, so the operator knows which setting to fix.
   */
  async call<C extends keyof ServiceAddresses, Req, Res>(
    service: C,
    method: (client: Clients[C]) => UnaryMethod<Req, Res>,
    request: Req,
    options: UnaryOptions = {},
  ): Promise<Res> {
    const client = this[service];
    try {
      return await unary(client, method(client), request, options);
    } catch (err) {
      throw await this.failure(service, err);
    }
  }

  /**
   * A failed call to `service` as the operator should see it: a TLS mismatch, or an
   * unreachable service, as one line naming the service and its address; other errors unchanged.
   */
  async failure(service: keyof ServiceAddresses, err: unknown): Promise<Error> {
    // Only a failed connection can be a TLS mismatch; an UNAVAILABLE from a handler (Redis down) is not.
    if (isServiceError(err) && err.code === status.UNAVAILABLE && /No connection established|Failed to connect|SSL|certificate/i.test(err.details)) {
      const line = await tlsMismatchLine(service, this.address(service), this.tls, this.settings.settings);
      if (line) return new CliError(line, EXIT.UNAVAILABLE);
    }
    return unreachable(err, service, this.address(service));
  }

  /**
   * Opens the connection to `service` now, so that a later call finds it ready: a command that
   * will need it while it waits for another answer does both at once. Best effort: a missing or
   * bad address, or a service that cannot be reached, is reported by the call itself.
   */
  connectEarly(service: keyof ServiceAddresses): void {
    try {
      this[service].getChannel().getConnectivityState(true);
    } catch {
      // the call says what is wrong
    }
  }

  /** Closes every client made. */
  close(): void {
    for (const c of Object.values(this.made)) c.close();
  }
}

/** A grpc-js unary method as the generated clients have it. */
export type UnaryMethod<Req, Res> = Parameters<typeof unary<Req, Res>>[1];

/** How the TLS lines name each service. */
const SERVICE_LABEL: Record<keyof ServiceAddresses, string> = { scheduler: 'scheduler', metadata: 'metadata service', results: 'results service' };

/**
 * One line saying what to do when a connection failed because of TLS: plaintext against a TLS
 * service, TLS against a plaintext one, no or a refused client certificate, or a service
 * certificate our CA did not sign. grpc-js reports the first and the refused
 * certificate both as "Failed to connect", so a TLS handshake (lib/tls.ts probeTls) tells them
 * apart. Undefined when TLS is not the problem.
 */
export async function tlsMismatchLine(
  service: keyof ServiceAddresses,
  address: string,
  tls: TlsFiles,
  settings: Record<SettingKey, Setting>,
): Promise<string | undefined> {
  const { outcome, detail } = await probeTls(address, tls);
  const where = `the ${SERVICE_LABEL[service]} at ${address}`;
  const from = (key: 'tls-ca' | 'tls-cert') => `${key} ${settings[key].value ?? '-'} (from ${settings[key].source})`;
  switch (outcome) {
    case 'TLS_REQUIRED':
      return `${where} requires TLS; give --tls-ca, --tls-cert and --tls-key (or BATON_TLS_CA, BATON_TLS_CERT, BATON_TLS_KEY; see \`baton pki\`)`;
    case 'PLAINTEXT_SERVER':
      return `${where} does not speak TLS (it runs with insecure: true); drop --tls-ca, --tls-cert and --tls-key (and BATON_TLS_*) to reach it in plaintext`;
    case 'CERTIFICATE_REQUIRED':
      return `${where} requires a client certificate; give --tls-cert and --tls-key too (an operator certificate: \`baton pki issue operator NAME\`)`;
    case 'CERTIFICATE_REFUSED':
      return `${where} refused our certificate, ${from('tls-cert')}: it is not signed by the CA the services trust, or has expired (${detail}); use one from \`baton pki issue operator NAME\` with the services' CA`;
    case 'SERVER_UNTRUSTED':
      return `${where} has a certificate that ${from('tls-ca')} does not trust (${detail}); give the CA that signed the services' certificates`;
    default:
      return undefined;
  }
}

/** An unreachable or silent service as one line naming it and its address; other errors unchanged. */
export function unreachable(err: unknown, service: keyof ServiceAddresses, address: string): Error {
  if (!isServiceError(err)) return err instanceof Error ? err : new Error(String(err));
  if (err.code === status.UNAVAILABLE)
    return new CliError(
      `cannot reach the ${service} service at ${address}: ${(err.details || 'unavailable').replace(/\.? ?Resolution note:.*$/s, '')}`,
      EXIT.UNAVAILABLE,
    );
  if (err.code === status.DEADLINE_EXCEEDED) return new CliError(`the ${service} service at ${address} did not answer in time`, EXIT.UNAVAILABLE);
  // Another gRPC server (often another Baton service) at the address: say so instead of "method not
  // implemented".
  if (err.code === status.UNIMPLEMENTED) {
    const method = /\/baton\.v1\.(\w+)\/(\w+)/.exec(err.details)?.slice(1).join('.') ?? 'this call';
    return new CliError(
      `${address} is not the ${SERVICE_LABEL[service]}: it does not implement ${method}; check --${service} or ${settingEnvName(service)} (\`baton config show\` says where it came from)`,
      EXIT.UNAVAILABLE,
    );
  }
  return err;
}
