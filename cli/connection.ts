import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import type { Command } from 'commander';
import { MetadataServiceClient } from '../gen/baton/v1/metadata_service';
import { ResultsServiceClient } from '../gen/baton/v1/results_service';
import { SchedulerServiceClient } from '../gen/baton/v1/scheduler_service';
import { makeClient, unary, type UnaryOptions } from '../lib/grpc-client';
import { isServiceError } from '../lib/errors';
import { CALLER_METADATA_KEY, certificateFilePeer } from '../lib/peer-identity';
import { probeTls, type TlsFiles } from '../lib/tls';
import { CliError, EXIT } from './cli-error';
import { resolveSetting, settingEnvName, type Setting } from './cli-settings';

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
 * Adds `--json`, `-v`, `--no-color`, the address flags of the services the command talks to
 * (`--scheduler`, `--metadata`, `--results`) and the TLS file flags to a command. `tasks status`
 * leaves out `--metadata`: there it is mco's metadata view.
 */
export function addConnectionOptions(command: Command, jsonDescription: string, services: Array<keyof ServiceAddresses> = ['scheduler', 'metadata', 'results']): Command {
  command.option('--json', jsonDescription).option('-v, --verbose', 'show every node, not only failures').option('--no-color', 'no colour');
  const names: Record<keyof ServiceAddresses, string> = { scheduler: 'scheduler', metadata: 'metadata service', results: 'results service' };
  for (const s of services) command.option(`--${s} <HOST:PORT>`, `${names[s]} address`);
  return command
    .option('--tls-ca <FILE>', 'CA certificate (PEM) to check the services with; enables TLS')
    .option('--tls-cert <FILE>', 'client certificate (PEM)')
    .option('--tls-key <FILE>', 'client key (PEM)');
}

/** Where `baton dev` records the addresses of the stack it runs, so plain `baton` finds it. */
export function devStateFile(): string {
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'baton', 'dev.json');
}

/** What a running `baton dev` records: its addresses, its pid, and with `--tls` operator alice's certificate files. */
export type DevState = ServiceAddresses & { pid: number } & Partial<Record<'tls-ca' | 'tls-cert' | 'tls-key', string>>;

/** Records the addresses (and TLS files) of a running `baton dev` stack. */
export function writeDevState(state: DevState): void {
  mkdirSync(dirname(devStateFile()), { recursive: true });
  writeFileSync(devStateFile(), JSON.stringify(state, null, 2));
}

/** Removes the record of a `baton dev` stack. */
export function clearDevState(): void {
  rmSync(devStateFile(), { force: true });
}

function readDevState(): Partial<DevState> {
  try {
    const state = JSON.parse(readFileSync(devStateFile(), 'utf8')) as Partial<DevState>;
    if (state.pid) process.kill(state.pid, 0); // throws when that `baton dev` is gone
    return state;
  } catch {
    return {};
  }
}

/** Where a running `baton dev` stack says a service is, or which TLS file to use, as a Setting (the last fallback). */
function devStateSetting(key: keyof ServiceAddresses | 'tls-ca' | 'tls-cert' | 'tls-key'): Setting | undefined {
  const value = readDevState()[key];
  return value ? { value, source: `running 'baton dev' (${devStateFile()})` } : undefined;
}

/**
 * One TLS file setting and where it came from: the flag, `BATON_TLS_*`, the config file, then
 * a running `baton dev --tls` (its operator certificate), so plain `baton` commands reach it.
 */
export function tlsSetting(key: 'tls-ca' | 'tls-cert' | 'tls-key', flag: string | undefined): Setting {
  return resolveSetting(key, flag, () => devStateSetting(key));
}

/**
 * One service address and where it came from: the `--scheduler/--metadata/--results` flag,
 * then `BATON_SCHEDULER`/`BATON_METADATA`/`BATON_RESULTS`, then the config file, then a
 * running `baton dev`.
 */
export function addressSetting(key: keyof ServiceAddresses, flags: Partial<ServiceAddresses>): Setting {
  return resolveSetting(key, flags[key], () => devStateSetting(key));
}

/** Resolves one service address (see addressSetting); none, or not HOST:PORT, is a usage error. */
export function resolveAddress(key: keyof ServiceAddresses, flags: Partial<ServiceAddresses>): string {
  const { value, source } = addressSetting(key, flags);
  if (!value) throw new CliError(`no ${key} address: pass --${key} HOST:PORT, set ${settingEnvName(key)}, put '${key}: HOST:PORT' in the config file, or start a local stack with 'baton dev'`);
  if (!/^[^\s:]+:\d{1,5}$/.test(value)) throw new CliError(`${key} address '${value}' (from ${source}) is not HOST:PORT`);
  return value;
}

/** The TLS files from flags, `BATON_TLS_*`, the config file or a running `baton dev --tls`; none means plaintext. */
export function resolveTls(flags: Pick<ConnectionOptions, 'tlsCa' | 'tlsCert' | 'tlsKey'>): TlsFiles {
  return {
    ca: tlsSetting('tls-ca', flags.tlsCa).value,
    cert: tlsSetting('tls-cert', flags.tlsCert).value,
    key: tlsSetting('tls-key', flags.tlsKey).value,
  };
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

  private tlsFiles: TlsFiles | undefined;

  constructor(private readonly flags: Partial<ServiceAddresses> & Pick<ConnectionOptions, 'tlsCa' | 'tlsCert' | 'tlsKey'>) {}

  private get tls(): TlsFiles {
    return (this.tlsFiles ??= resolveTls(this.flags));
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
    return resolveAddress(key, this.flags);
  }

  get scheduler(): SchedulerServiceClient {
    return (this.made.scheduler ??= makeClient(SchedulerServiceClient, resolveAddress('scheduler', this.flags), this.tls));
  }

  get metadata(): MetadataServiceClient {
    return (this.made.metadata ??= makeClient(MetadataServiceClient, resolveAddress('metadata', this.flags), this.tls));
  }

  get results(): ResultsServiceClient {
    return (this.made.results ??= makeClient(ResultsServiceClient, resolveAddress('results', this.flags), this.tls));
  }

  /**
   * A unary call to one of the services; UNAVAILABLE and DEADLINE_EXCEEDED become one line
   * naming the service and the address tried (issue 7 point 6).
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
      // Only a failed connection can be a TLS mismatch; an UNAVAILABLE from a handler (Redis down) is not.
      if (isServiceError(err) && err.code === status.UNAVAILABLE && /No connection established|Failed to connect|SSL|certificate/i.test(err.details)) {
        const line = await tlsMismatchLine(service, this.address(service), this.tls, this.flags);
        if (line) throw new CliError(line, EXIT.UNAVAILABLE);
      }
      throw unreachable(err, service, this.address(service));
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
 * certificate our CA did not sign (issue 9). grpc-js reports the first and the refused
 * certificate both as "Failed to connect", so a TLS handshake (lib/tls.ts probeTls) tells them
 * apart. Undefined when TLS is not the problem.
 */
export async function tlsMismatchLine(service: keyof ServiceAddresses, address: string, tls: TlsFiles, flags: Pick<ConnectionOptions, 'tlsCa' | 'tlsCert' | 'tlsKey'> = {}): Promise<string | undefined> {
  const { outcome, detail } = await probeTls(address, tls);
  const where = `the ${SERVICE_LABEL[service]} at ${address}`;
  const from = (key: 'tls-ca' | 'tls-cert', flag: string | undefined) => `${key} ${tlsSetting(key, flag).value ?? '-'} (from ${tlsSetting(key, flag).source})`;
  switch (outcome) {
    case 'TLS_REQUIRED':
      return `${where} requires TLS; give --tls-ca, --tls-cert and --tls-key (or BATON_TLS_CA, BATON_TLS_CERT, BATON_TLS_KEY; see \`baton pki\`)`;
    case 'PLAINTEXT_SERVER':
      return `${where} does not speak TLS (it runs with insecure: true); drop --tls-ca, --tls-cert and --tls-key (and BATON_TLS_*) to reach it in plaintext`;
    case 'CERTIFICATE_REQUIRED':
      return `${where} requires a client certificate; give --tls-cert and --tls-key too (an operator certificate: \`baton pki issue operator NAME\`)`;
    case 'CERTIFICATE_REFUSED':
      return `${where} refused our certificate, ${from('tls-cert', flags.tlsCert)}: it is not signed by the CA the services trust, or has expired (${detail}); use one from \`baton pki issue operator NAME\` with the services' CA`;
    case 'SERVER_UNTRUSTED':
      return `${where} has a certificate that ${from('tls-ca', flags.tlsCa)} does not trust (${detail}); give the CA that signed the services' certificates`;
    default:
      return undefined;
  }
}

/** An unreachable or silent service as one line naming it and its address; other errors unchanged. */
export function unreachable(err: unknown, service: keyof ServiceAddresses, address: string): Error {
  if (!isServiceError(err)) return err instanceof Error ? err : new Error(String(err));
  if (err.code === status.UNAVAILABLE) return new CliError(`cannot reach the ${service} service at ${address}: ${(err.details || 'unavailable').replace(/\.? ?Resolution note:.*$/s, '')}`, EXIT.UNAVAILABLE);
  if (err.code === status.DEADLINE_EXCEEDED) return new CliError(`the ${service} service at ${address} did not answer in time`, EXIT.UNAVAILABLE);
  return err;
}
