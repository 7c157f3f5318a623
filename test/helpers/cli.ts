import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { batonScript, packageRoot } from '../../lib/package-root';

/** What a `baton` run printed and how it exited. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment of a CLI process: its config file and `baton dev` state at paths that do not exist, then `env`. */
function cliEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    ...process.env,
    NO_COLOR: '1',
    XDG_CONFIG_HOME: '/nonexistent/baton-test',
    XDG_STATE_HOME: '/nonexistent/baton-test',
    XDG_CACHE_HOME: '/nonexistent/baton-test',
    ...env,
  };
}

/** A `baton` process started by startCli: its output so far, its exit, and a kill of its whole group. */
export interface LiveCli {
  output(): { stdout: string; stderr: string };
  exited: Promise<number | null>;
  /** SIGKILL to its process group, unless it has exited. */
  kill(): void;
}

/** Starts the compiled `baton` CLI in its own process group, configured as runCli configures it; its output can be read while it runs. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): LiveCli {
  const child = spawn(process.execPath, [batonScript(), ...args], { env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return {
    output: () => ({ stdout, stderr }),
    exited: new Promise((resolve) => child.once('close', (code) => resolve(code))),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    },
  };
}

/**
 * Runs the compiled `baton` CLI as a separate process, as an operator would. Its config file
 * and `baton dev` state are pointed at paths that do not exist, so only `env` configures it.
 */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<CliRun> {
  return collect(spawn(process.execPath, [batonScript(), ...args], { env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] }), timeoutMs);
}

/**
 * Runs `baton` from a shell as `npm link` installs it: a link named `baton` on PATH to the file
 * package.json's "bin" names, configured as runCli configures it.
 */
export async function runInstalledCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<CliRun> {
  const bin = mkdtempSync(join(tmpdir(), 'baton-installed-'));
  try {
    const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { bin: { baton: string } };
    symlinkSync(join(packageRoot(), pkg.bin.baton), join(bin, 'baton'));
    const shellEnv = cliEnv(env);
    shellEnv.PATH = `${bin}:${shellEnv.PATH ?? ''}`;
    return await collect(spawn('/bin/sh', ['-c', 'exec baton "$@"', 'sh', ...args], { env: shellEnv, stdio: ['ignore', 'pipe', 'pipe'] }), timeoutMs);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
}

/** A CLI process's output and exit; SIGKILL after `timeoutMs`. */
function collect(child: ChildProcessByStdio<null, Readable, Readable>, timeoutMs: number): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Runs a bash pipeline in which `$BATON` is the compiled CLI (the scripts are the tests' own,
 * never network input), configured as runCli configures it. In its own process group, ended as
 * a whole on timeout.
 */
export function runCliPipeline(script: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<CliRun> {
  const baton = `${process.execPath} ${batonScript()}`;
  const child = spawn('bash', ['-c', `set -o pipefail; ${script}`], {
    env: cliEnv({ BATON: baton, ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
