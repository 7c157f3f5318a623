import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, open, readFile } from 'node:fs/promises';
import { processAlive } from '../lib/child-process';

/**
 * The cheap wrapper every task runs under (docs/decisions.md "A task outlives its agent"): one
 * POSIX `/bin/sh` per task, not a Node process. It is started in its own session (setsid, via
 * spawn's `detached`), so neither a restart nor a SIGKILL of the agent reaches it, and it writes
 * everything the agent needs to report the run into the spool itself:
 *
 * 1. its own pid to `wrapper_pid` (before the task starts, so a running task always has one);
 * 2. the task's stdout and stderr to `stdout` and `stderr`;
 * 3. the task's exit status to `exitcode`, as its last act. The file is read only once the
 *    wrapper is gone (its exit event, or its pid no longer alive), so it is complete when read;
 *    a builtin `printf` rather than `exitcode.tmp` plus `mv` saves a fork and an exec per task,
 *    a third of the wrapper's cost (bench/agent-bench.ts). A wrapper killed before the write
 *    leaves no (or an empty) `exitcode`, which is reported as such.
 *
 * The script is a constant: the spool directory and the task's argv arrive as positional
 * parameters ("$1", "$@"), never interpolated, and no task input goes through it (input is on
 * the wrapper's stdin, inherited by the task, and in its environment). It catches HUP, INT and
 * TERM so that a SIGTERM to the process group (timeout, cancel) stops the task but lets the
 * wrapper record the exit status; a caught signal is reset to default in the task (POSIX exec),
 * unlike an ignored one. SIGKILL takes the wrapper too: the agent records why it sent one
 * (`stopped`) and reports the run from that.
 */
export const WRAPPER_SCRIPT = [
  'trap : HUP INT TERM',
  'd=$1; shift',
  'echo $$ >"$d/wrapper_pid"',
  '"$@" >"$d/stdout" 2>"$d/stderr"',
  'c=$?',
  'printf %s $c >"$d/exitcode"',
  'exit $c',
].join('\n');

/** The shell the wrapper runs in. */
export const WRAPPER_SHELL = '/bin/sh';

/** `$0` of the wrapper, which makes it easy to find in `ps`. */
export const WRAPPER_NAME = 'baton-task-wrapper';

/** What spawnWrapper needs. */
export interface WrapperSpawn {
  /** The run's spool directory (the wrapper's `$1`, its working directory). */
  dir: string;
  /** The task's argv: the executable (maybe behind a privilege-dropping helper). */
  argv: string[];
  /** The task's complete environment. */
  env: Record<string, string>;
  /** Text for the task's stdin, or undefined for /dev/null. */
  stdin?: string;
}

/**
 * Starts the wrapper in its own session and process group. Resolves once it runs; rejects when
 * /bin/sh cannot be started. The stdin document goes through a pipe, so input (sensitive values
 * included) never touches the disk.
 */
export async function spawnWrapper(w: WrapperSpawn): Promise<{ child: ChildProcess; exited: Promise<void> }> {
  const child = spawn(WRAPPER_SHELL, ['-c', WRAPPER_SCRIPT, WRAPPER_NAME, w.dir, ...w.argv], {
    cwd: w.dir,
    env: w.env,
    detached: true,
    stdio: [w.stdin === undefined ? 'ignore' : 'pipe', 'ignore', 'ignore'],
  });
  // Listened for before anything is awaited: a short task may be gone by then.
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // A pid means the fork and exec of /bin/sh worked; only without one is there an error to wait
  // for. Not waiting for the 'spawn' event saves a turn of the event loop per task.
  if (child.pid === undefined) {
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
  }
  child.on('error', () => undefined);
  if (child.stdin) {
    // The task may exit without reading its input; EPIPE is not the agent's failure.
    child.stdin.on('error', () => undefined);
    child.stdin.end(w.stdin);
  }
  return { child, exited };
}

/**
 * True when `pid` is alive and is the wrapper of `dir`. On Linux its command line is compared,
 * so a pid reused by another process after a reboot is not mistaken for the wrapper.
 */
export async function wrapperAlive(pid: number, dir: string): Promise<boolean> {
  if (!Number.isSafeInteger(pid) || pid <= 1) return false;
  // Gone (ESRCH), or someone else's process (EPERM), which a wrapper the agent started never is.
  if (!processAlive(pid)) return false;
  try {
    const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    return args.includes(WRAPPER_NAME) && args.includes(dir);
  } catch {
    return true; // no /proc (not Linux): the signal check is all there is
  }
}

/**
 * Why the executable cannot be started, or undefined: for a `#!` script, an interpreter that is
 * missing or not executable. Checked before the wrapper starts, because under the wrapper a
 * failed exec is only an exit status (126/127) that a task could also return on purpose.
 */
export async function interpreterProblem(executable: string): Promise<string | undefined> {
  let head: Buffer;
  const fh = await open(executable, 'r');
  try {
    head = Buffer.alloc(256);
    const { bytesRead } = await fh.read(head, 0, 256, 0);
    head = head.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  if (head[0] !== 0x23 || head[1] !== 0x21) return undefined; // not "#!": a binary or a shell script run by exec's fallback
  const line = head.subarray(2).toString('utf8').split('\n')[0].trim();
  const interpreter = line.split(/\s+/)[0];
  if (!interpreter) return 'the #! line names no interpreter';
  try {
    await access(interpreter, constants.X_OK);
  } catch (err) {
    return `its interpreter ${interpreter} cannot be used: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
  return undefined;
}
