import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { batonScript } from '../../lib/package-root';
import { hasRedisServer, REDIS_INSTALL_HINT } from '../../lib/redis-server';
import { CliError, EXIT } from '../cli-error';
import { settingEnvName, type SettingKey } from '../cli-settings';
import { removeDevRecord, writeDevRecord, type DevRecord } from '../dev-records';
import { DEFAULT_DEV_AGENTS, DevStack } from '../dev-stack';

/** Most scheduler replicas `baton dev --schedulers` starts. */
const MAX_DEV_SCHEDULERS = 5;

interface DevOptions {
  agents: number;
  schedulers: number;
  environmentpath?: string;
  run?: string;
  logLevel: string;
  tls?: boolean;
  logs?: string;
}

function checkEnvironmentpath(dir: string): string {
  const full = resolve(dir);
  try {
    if (!statSync(full).isDirectory()) throw new Error();
  } catch {
    throw new CliError(`--environmentpath ${dir}: not a directory; expected DIR/<environment>/modules/<module>/tasks/...`);
  }
  return full;
}

/** Creates (if needed) the --logs directory and returns its full path; one line when it cannot be. */
function logDirectory(dir: string): string {
  const full = resolve(dir);
  try {
    mkdirSync(full, { recursive: true });
    if (!statSync(full).isDirectory()) throw new Error();
  } catch {
    throw new CliError(`--logs ${dir}: cannot create or use this directory; expected a writable directory for the processes' logs`);
  }
  return full;
}

/**
 * Where the processes' log lines go: each to `<dir>/<name>.log` (appended, kept after the stack
 * stops, one JSON object a line as the processes write them), or without a directory to stderr
 * prefixed with the process's name.
 */
function logSink(dir: string | undefined): (name: string, line: string) => void {
  if (!dir) return (name, line) => process.stderr.write(`[${name}] ${line}\n`);
  // Synchronous appends: a line written just before a crash or Ctrl-C is never lost in a buffer.
  return (name, line) => appendFileSync(join(dir, `${name}.log`), `${line}\n`);
}

/**
 * Runs `baton <args>` as a child process against this stack (the same CLI, a separate process),
 * pinned to it by the BATON_* variables its export lines set: a newer stack is not picked.
 */
function runBaton(args: string[], record: DevRecord): Promise<number> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of DEV_SETTING_KEYS) {
    if (record[key]) env[settingEnvName(key)] = record[key];
    else delete env[settingEnvName(key)];
  }
  const child = spawn(process.execPath, [batonScript(), ...args], { stdio: 'inherit', env });
  return new Promise((done) => child.once('exit', (code) => done(code ?? EXIT.FAILED)));
}

/** The settings a stack's record holds. */
const DEV_SETTING_KEYS: readonly SettingKey[] = ['scheduler', 'metadata', 'results', 'tls-ca', 'tls-cert', 'tls-key'];

/** `export BATON_SCHEDULER=...` lines for a stack: its addresses and TLS files (unset when plaintext). */
export function exportLines(record: DevRecord): string {
  return DEV_SETTING_KEYS.map((k) => (record[k] ? `export ${settingEnvName(k)}=${shellWord(record[k])}\n` : `unset ${settingEnvName(k)}\n`)).join('');
}

/** A path or address as one shell word. */
function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * `baton dev`: a whole local fleet on this machine (redis-server, the three services, N agents),
 * until Ctrl-C; or, with `--run`, only for the length of one `baton` command.
 */
export function devCommand(done: (code: number) => void): Command {
  return new Command('dev')
    .description('start redis, the services and local agents on this machine; Ctrl-C stops them all')
    .addOption(
      new Option('--agents <N>', 'number of agents').default(DEFAULT_DEV_AGENTS).argParser((v: string) => {
        if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 50) throw new CliError(`--agents expects a number from 1 to 50, got '${v}'`);
        return Number(v);
      }),
    )
    .addOption(
      new Option('--schedulers <N>', 'number of scheduler replicas on the one Redis; every agent is given them all').default(1).argParser((v: string) => {
        if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > MAX_DEV_SCHEDULERS)
          throw new CliError(`--schedulers expects a number from 1 to ${MAX_DEV_SCHEDULERS}, got '${v}'`);
        return Number(v);
      }),
    )
    .option('--environmentpath <DIR>', 'Puppet environmentpath: DIR/<environment>/modules/<module>/tasks/... (default: examples/modules)')
    .option('--run <ARGS>', "run one baton command against the fleet, then stop (e.g. --run 'tasks run demo::echo --message hi')")
    .option('--log-level <LEVEL>', 'log level of the services and agents (their logs go to stderr)', 'warn')
    .option(
      '--logs <DIR>',
      'write the log of each service and agent to DIR/<name>.log (metadata, results, scheduler, the agents by name), kept after the stack stops; default: on stderr',
    )
    .option(
      '--tls',
      'mutual TLS everywhere: a throwaway CA and certificates in the state directory (operators alice and bob); without it every process runs plaintext with --insecure, for local development only',
    )
    .action(async (options: DevOptions) => {
      if (!hasRedisServer()) throw new CliError(REDIS_INSTALL_HINT, EXIT.UNAVAILABLE);
      const environmentpath = options.environmentpath ? checkEnvironmentpath(options.environmentpath) : undefined;
      const logs = options.logs !== undefined ? logDirectory(options.logs) : undefined;
      const say = (line: string) => process.stderr.write(`${line}\n`);
      const replicas = options.schedulers > 1 ? ` (${options.schedulers} replicas)` : '';
      say(`Starting redis-server, the metadata, results and scheduler${replicas} services, and ${options.agents} agents...`);
      const stack = await DevStack.start({
        agents: options.agents,
        schedulers: options.schedulers,
        environmentpath,
        logLevel: options.logLevel,
        tls: options.tls === true,
        onStderr: logSink(logs),
      });
      const a = stack.addresses;
      // With --tls, operator alice's certificate: plain `baton` commands in another terminal use it (`baton config show` says so).
      const alice = stack.tls?.operator('alice');
      const tlsState = alice ? { 'tls-ca': alice.ca, 'tls-cert': alice.cert, 'tls-key': alice.key } : {};
      const record: DevRecord = {
        pid: process.pid,
        started: new Date().toISOString(),
        scheduler: a.scheduler,
        metadata: a.metadata,
        results: a.results,
        ...tlsState,
      };
      const recordFile = writeDevRecord(record);
      let stopping: Promise<void> | undefined;
      const stop = () => {
        stopping ??= stack.stop().finally(() => removeDevRecord(recordFile));
        return stopping;
      };
      // On stdout, alone: `baton dev > stack.env` then `. stack.env` pins a shell to this stack.
      process.stdout.write(exportLines(record));
      say(`  redis      ${a.redis}`);
      say(`  metadata   ${a.metadata}`);
      say(`  results    ${a.results}`);
      // The CLI talks to the first replica; any replica answers every call.
      say(
        a.schedulers.length > 1
          ? `  scheduler  ${a.schedulers.join(', ')} (replicas; the CLI uses the first, agents know them all)`
          : `  scheduler  ${a.scheduler}`,
      );
      say(`  agents     ${stack.agentNames.join(', ')} (state in ${stack.stateDir})`);
      say(logs ? `  logs       ${logs}/<name>.log (level ${options.logLevel})` : `  logs       on stderr (level ${options.logLevel}; --logs DIR for files)`);
      if (stack.tls) {
        say(`  tls        mutual TLS; CA ${stack.tls.ca}`);
        say(`             operators alice and bob: ${stack.tls.dir}/operator-<name>.pem and .key (the CLI uses alice's by itself)`);
      } else {
        say('  tls        none: plaintext, every process runs with --insecure (local development only; --tls for certificates)');
      }
      if (options.run) {
        const args = options.run.split(/\s+/).filter(Boolean);
        say(`\n$ baton ${args.join(' ')}\n`);
        const code = await runBaton(args, record);
        await stop();
        done(code);
        return;
      }
      say('');
      say(`Try, in another terminal (the CLI finds the newest running stack by itself; the export lines above pin this one):`);
      say(`  baton tasks run demo::echo --message hello -I ${stack.agentNames.join(',')}`);
      say('Press Ctrl-C to stop everything.');
      await new Promise<void>((resolveStop) => {
        const onSignal = () => {
          say('\nStopping...');
          stop().then(resolveStop, resolveStop);
        };
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
      });
      say('Stopped.');
      done(EXIT.OK);
    });
}
