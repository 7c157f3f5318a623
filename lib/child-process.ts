import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createInterface } from 'node:readline';

/** How long `stopChild` waits after SIGTERM before SIGKILL. */
export const STOP_GRACE_MS = 5_000;

/** A child process started by `startChild`. */
export interface StartedChild {
  child: ChildProcess;
  /** The stdout line that signalled readiness. */
  readyLine: string;
  /** SIGTERM, then SIGKILL after the grace period; resolves when the child has exited. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * How long a child may take to say it is ready: an agent is ready once a scheduler welcomed it,
 * which on a machine whose cores are busy with other work took over 20 s.
 */
const READY_TIMEOUT_MS = 60_000;

/** Options of `startChild`. */
export interface StartChildOptions extends SpawnOptions {
  /** A stdout line matching this means the child is ready. */
  ready: RegExp;
  /**
   * Give up (and kill the child) after this many ms; default READY_TIMEOUT_MS. A child that
   * fails exits and is reported at once; the bound only ends one that hangs.
   */
  timeoutMs?: number;
  /** Receives every stdout line (after readiness too). */
  onLine?: (line: string) => void;
  /** Receives every stderr line. */
  onStderr?: (line: string) => void;
}

/** True while a process with this pid exists and may be signalled by us (signal 0 probes without sending). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops a child: SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
export function stopChild(child: ChildProcess, graceMs = STOP_GRACE_MS): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Starts a process and waits until it prints a line matching `ready` on stdout. Fails with the
 * process's last output lines (stderr, and stdout before it was ready: redis-server logs why it
 * stopped there) if it exits first or does not become ready in time.
 */
export function startChild(command: string, args: string[], options: StartChildOptions): Promise<StartedChild> {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  const outputTail: string[] = [];
  const keep = (line: string) => {
    outputTail.push(line);
    if (outputTail.length > 20) outputTail.shift();
  };
  createInterface({ input: child.stderr }).on('line', (line) => {
    options.onStderr?.(line);
    keep(line);
  });
  return new Promise((resolve, reject) => {
    let ready = false;
    const fail = (why: string) => {
      if (ready) return;
      ready = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')}: ${why}${outputTail.length ? `\n${outputTail.join('\n')}` : ''}`));
    };
    const timer = setTimeout(() => fail('not ready in time'), options.timeoutMs ?? READY_TIMEOUT_MS);
    child.once('error', (err) => fail(err.message));
    // 'close' rather than 'exit': by then its last lines (why it stopped) have been read.
    child.once('close', (code, signal) => fail(`exited (${signal ?? code}) before it was ready`));
    createInterface({ input: child.stdout }).on('line', (line) => {
      options.onLine?.(line);
      if (!ready) keep(line);
      if (!ready && options.ready.test(line)) {
        ready = true;
        clearTimeout(timer);
        resolve({ child, readyLine: line, stop: (graceMs) => stopChild(child, graceMs) });
      }
    });
  });
}
