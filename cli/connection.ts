import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { Metadata } from '@grpc/grpc-js';
import type { Command } from 'commander';
import { MetadataServiceClient } from '../gen/baton/v1/metadata_service';
import { ResultsServiceClient } from '../gen/baton/v1/results_service';
import { SchedulerServiceClient } from '../gen/baton/v1/scheduler_service';
import { makeClient } from '../lib/grpc-client';
import { CliError } from './cli-error';

/** Which service addresses the CLI talks to. */
export interface ServiceAddresses {
  scheduler: string;
  metadata: string;
  results: string;
}

/** Options every command that talks to the services takes. */
export interface ConnectionOptions extends Partial<ServiceAddresses> {
  json?: boolean;
  verbose?: boolean;
  /** False with `--no-color`. */
  color: boolean;
}

/** Adds `--scheduler`, `--metadata`, `--results`, `--json`, `-v` and `--no-color` to a command. */
export function addConnectionOptions(command: Command, jsonDescription: string): Command {
  return command
    .option('--json', jsonDescription)
    .option('-v, --verbose', 'show every node, not only failures')
    .option('--no-color', 'no colour')
    .option('--scheduler <HOST:PORT>', 'scheduler address')
    .option('--metadata <HOST:PORT>', 'metadata service address')
    .option('--results <HOST:PORT>', 'results service address');
}

/** Where `baton dev` records the addresses of the stack it runs, so plain `baton` finds it. */
export function devStateFile(): string {
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'baton', 'dev.json');
}

/** Records the addresses of a running `baton dev` stack. */
export function writeDevState(addresses: ServiceAddresses & { pid: number }): void {
  mkdirSync(dirname(devStateFile()), { recursive: true });
  writeFileSync(devStateFile(), JSON.stringify(addresses, null, 2));
}

/** Removes the record of a `baton dev` stack. */
export function clearDevState(): void {
  rmSync(devStateFile(), { force: true });
}

function readDevState(): Partial<ServiceAddresses> & { pid?: number } {
  try {
    const state = JSON.parse(readFileSync(devStateFile(), 'utf8')) as Partial<ServiceAddresses> & { pid?: number };
    if (state.pid) process.kill(state.pid, 0); // throws when that `baton dev` is gone
    return state;
  } catch {
    return {};
  }
}

/**
 * Resolves one service address: the `--scheduler/--metadata/--results` flag, then
 * `BATON_SCHEDULER`/`BATON_METADATA`/`BATON_RESULTS`, then a running `baton dev`.
 */
export function resolveAddress(key: keyof ServiceAddresses, flags: Partial<ServiceAddresses>): string {
  const value = flags[key] ?? process.env[`BATON_${key.toUpperCase()}`] ?? readDevState()[key];
  if (!value) throw new CliError(`no ${key} address: pass --${key} HOST:PORT, set BATON_${key.toUpperCase()}, or start a local stack with 'baton dev'`);
  if (!/^[^\s:]+:\d{1,5}$/.test(value)) throw new CliError(`${key} address '${value}' is not HOST:PORT`);
  return value;
}

/** The caller id sent with every run: `user=<login name>` (bound to a certificate once TLS identities exist). */
export function callerMetadata(): Metadata {
  const md = new Metadata();
  md.set('x-baton-caller', `user=${userInfo().username}`);
  return md;
}

/** Clients of the three services, each made (and its address resolved) on first use. */
export class Clients {
  private made: Partial<{ scheduler: SchedulerServiceClient; metadata: MetadataServiceClient; results: ResultsServiceClient }> = {};

  constructor(private readonly flags: Partial<ServiceAddresses>) {}

  get scheduler(): SchedulerServiceClient {
    return (this.made.scheduler ??= makeClient(SchedulerServiceClient, resolveAddress('scheduler', this.flags)));
  }

  get metadata(): MetadataServiceClient {
    return (this.made.metadata ??= makeClient(MetadataServiceClient, resolveAddress('metadata', this.flags)));
  }

  get results(): ResultsServiceClient {
    return (this.made.results ??= makeClient(ResultsServiceClient, resolveAddress('results', this.flags)));
  }

  /** Closes every client made. */
  close(): void {
    for (const c of Object.values(this.made)) c.close();
  }
}
