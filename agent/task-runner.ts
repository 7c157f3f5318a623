import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, open, writeFile } from 'node:fs/promises';
import { constants as osConstants, userInfo } from 'node:os';
import type { RunCommand, TaskStarted } from '../gen/baton/v1/agent_gateway_service';
import { nodeStateToJSON, type NodeResult } from '../gen/baton/v1/run';
import type { Logger } from '../lib/logger';
import { isTaskId } from '../lib/task-id';
import { checkTaskFile, type FileCache } from './file-cache';
import { ERROR_KIND, STATUS_AGENT_ERROR, STATUS_INVALID_DATA, exitedResult, notStartedResult, type ResultIdentity, type StopReason } from './node-result';
import { SPOOL_FILE_MODE, type Spool, type SpoolPaths } from './spool';
import { parseInput, resolveInputMethod, stdinDocument, taskArguments, taskEnvironment, usesStdin } from './task-input';

/**
 * Runs tasks (docs/agent-protocol.md §5): checks the command, verifies the cached files again,
 * creates the spool directory (once per task id, ever), lays the files out, and spawns the
 * executable without a shell, in its own session and process group (`detached`), with stdout
 * and stderr going straight to files in the spool. When it exits the result is written to
 * `result.json` and reported.
 *
 * Limitation until the wrapper exists (DESIGN.md "a cheap wrapper"): the task survives an agent
 * restart (own session, output on disk), but its exit code is observed by this process, so a
 * task that ends while no agent is running leaves no `exitcode` or `result.json`.
 */

/** Grace period between SIGTERM and SIGKILL when stopping a task (timeout or cancel). */
export const DEFAULT_KILL_GRACE_MS = 10_000;

/** Most bytes of stdout, and of stderr, put in a result; the spool keeps all of it. */
export const MAX_RESULT_OUTPUT_BYTES = 1024 * 1024;

/** Mode of the laid-out executable. */
export const EXECUTABLE_MODE = 0o750;

/** Receives what happens to a run, to be sent to the scheduler. */
export interface TaskEvents {
  /** The task was spawned. */
  started(event: TaskStarted): void;
  /** The task ended or could not start (also for a duplicate command whose run has a result). */
  finished(result: NodeResult): void;
}

/** Options of TaskRunner. */
export interface TaskRunnerOptions {
  /** The node's identity: `host` of every result and named in every node-side error. */
  identity: string;
  spool: Spool;
  cache: FileCache;
  log: Logger;
  /** SIGTERM → SIGKILL grace in ms; default DEFAULT_KILL_GRACE_MS. */
  killGraceMs?: number;
  /** Environment the task's is built from; default process.env. */
  env?: NodeJS.ProcessEnv;
}

/**
 * States of a running task:
 * - RUNNING: spawned (initial state), not signalled.
 * - TERMINATING: SIGTERM sent to its process group by a timeout or a CancelCommand.
 * - KILLED: still alive after the grace period; SIGKILL sent to the process group.
 * - EXITED: the process exited; its result is being written and reported.
 */
type TaskState = 'RUNNING' | 'TERMINATING' | 'KILLED' | 'EXITED';

interface RunningTask {
  taskId: string;
  child: ChildProcess;
  state: TaskState;
  stoppedBy?: StopReason;
  timeoutTimer?: NodeJS.Timeout;
}

/** How a process ended: its exit code, or the signal that killed it. */
interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A run that cannot go ahead: the status code and error kind to report. */
class RunRefusal extends Error {
  constructor(
    readonly statuscode: number,
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}

/** Reads at most `max` bytes of a file, cut back to a UTF-8 character boundary when truncated. */
async function readCapped(path: string, max: number): Promise<{ data: Buffer; truncated: boolean }> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return { data: Buffer.alloc(0), truncated: false };
  }
  // Output that cannot be read is reported as empty rather than losing the whole result.
  try {
    const { size } = await fh.stat();
    const n = Math.min(size, max);
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    if (size <= max) return { data: buf.subarray(0, bytesRead), truncated: false };
    let cut = bytesRead;
    // Continuation bytes are 10xxxxxx; stop at the start of a character.
    while (cut > 0 && (buf[cut] & 0xc0) === 0x80) cut--;
    return { data: buf.subarray(0, cut), truncated: true };
  } catch {
    return { data: Buffer.alloc(0), truncated: false };
  } finally {
    await fh.close();
  }
}

function signalNumber(signal: NodeJS.Signals): number {
  return (osConstants.signals as Record<string, number>)[signal] ?? 0;
}

/** Runs tasks and keeps track of the ones running. */
export class TaskRunner {
  private readonly running = new Map<string, RunningTask>();
  private readonly killGraceMs: number;

  constructor(private readonly options: TaskRunnerOptions) {
    this.killGraceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  }

  /** Number of tasks running now (for heartbeats). */
  get runningCount(): number {
    return this.running.size;
  }

  /** True when the task id is running here. */
  isRunning(taskId: string): boolean {
    return this.running.has(taskId);
  }

  /**
   * Runs a RunCommand to the end. Resolves with the result it reported, or undefined when it
   * ignored the command (a task id that is running already). Never rejects: every failure
   * becomes a reported result.
   */
  async run(cmd: RunCommand, events: TaskEvents): Promise<NodeResult | undefined> {
    const { identity, spool, log } = this.options;
    const id: ResultIdentity = { host: identity, taskId: cmd.taskId, task: cmd.task, caller: cmd.caller };
    const report = (result: NodeResult): NodeResult => {
      events.finished(result);
      return result;
    };
    const refused = (err: unknown): NodeResult => {
      const r = err instanceof RunRefusal ? err : new RunRefusal(STATUS_AGENT_ERROR, ERROR_KIND.agentError, (err as Error).message);
      log.warn({ taskId: cmd.taskId, task: cmd.task, reason: r.message }, 'run refused');
      return notStartedResult(id, r.statuscode, r.kind, `node ${identity}: ${r.message}`);
    };

    // Checks that write nothing: a refused command leaves no trace on disk (and no spool
    // directory, so it is reported now and not re-sent after a reconnect).
    if (!isTaskId(cmd.taskId)) return report(refused(new RunRefusal(STATUS_INVALID_DATA, ERROR_KIND.invalidCommand, `task id '${cmd.taskId}' is not 32 lowercase hex characters`)));
    if (await spool.exists(cmd.taskId)) return this.duplicate(cmd, events);
    let prepared: { args: Record<string, unknown>; method: ReturnType<typeof resolveInputMethod> };
    try {
      prepared = this.check(cmd);
      await this.verifyCache(cmd);
    } catch (err) {
      return report(refused(err));
    }

    let created: boolean;
    try {
      created = await spool.create(cmd.taskId);
    } catch (err) {
      return report(refused(new Error(`cannot create the spool directory: ${(err as Error).message}`)));
    }
    if (!created) return this.duplicate(cmd, events);
    const paths = spool.paths(cmd.taskId);
    const args = taskArguments(prepared.args, { task: cmd.task, installdir: paths.files, noop: cmd.noop });
    let child: ChildProcess;
    let exited: Promise<ExitStatus>;
    let startTime: Date;
    try {
      let executable: string;
      try {
        await spool.writeRequest(cmd);
        executable = (await spool.layoutFiles(cmd.taskId, cmd.files, this.options.cache)).get(cmd.executable)!;
        await chmod(executable, EXECUTABLE_MODE);
      } catch (err) {
        throw new Error(`cannot lay the task out in ${paths.dir}: ${(err as Error).message}`);
      }
      ({ child, exited } = await this.spawnTask(executable, paths, prepared.method, args, cmd));
      startTime = new Date();
    } catch (err) {
      // From here on the spool directory exists, so the result is kept and re-sent until acked.
      const result = refused(err);
      await spool.writeResult(result).catch((e: unknown) => log.error({ taskId: cmd.taskId, err: (e as Error).message }, 'cannot write result.json'));
      return report(result);
    }

    const task: RunningTask = { taskId: cmd.taskId, child, state: 'RUNNING' };
    this.running.set(cmd.taskId, task);
    if (cmd.timeoutS > 0) task.timeoutTimer = setTimeout(() => this.stop(task, 'TIMEOUT'), cmd.timeoutS * 1000);
    log.info({ taskId: cmd.taskId, task: cmd.task, pid: child.pid }, 'task started');
    events.started({ taskId: cmd.taskId, startTime });

    const { code, signal } = await exited;
    task.state = 'EXITED';
    clearTimeout(task.timeoutTimer);
    this.running.delete(cmd.taskId);
    const endTime = new Date();
    // A task killed by a signal gets the shell's convention, 128 + signal number.
    const exitcode = code ?? (signal ? 128 + signalNumber(signal) : -1);
    const result = await this.collect(id, paths, { exitcode, signal, startTime, endTime, stoppedBy: task.stoppedBy, timeoutS: cmd.timeoutS });
    log.info({ taskId: cmd.taskId, exitcode, signal, state: nodeStateToJSON(result.state) }, 'task exited');
    return report(result);
  }

  /**
   * Stops a running task (CancelCommand, docs/agent-protocol.md §7): SIGTERM to its process
   * group, SIGKILL after the grace period. Returns false when the task id is not running here.
   */
  cancel(taskId: string): boolean {
    const task = this.running.get(taskId);
    if (!task) return false;
    this.stop(task, 'CANCEL');
    return true;
  }

  /** A command for a task id that has a spool directory: re-send its result, or ignore it. */
  private async duplicate(cmd: RunCommand, events: TaskEvents): Promise<NodeResult | undefined> {
    const previous = await this.options.spool.readResult(cmd.taskId);
    this.options.log.info({ taskId: cmd.taskId, hasResult: previous !== undefined }, 'task id ran here already; not running it again');
    if (previous) events.finished(previous);
    return previous;
  }

  /** Validates the command without touching the disk; throws RunRefusal. */
  private check(cmd: RunCommand): { args: Record<string, unknown>; method: ReturnType<typeof resolveInputMethod> } {
    const invalid = (msg: string) => new RunRefusal(STATUS_INVALID_DATA, ERROR_KIND.invalidCommand, msg);
    if (cmd.files.length === 0) throw invalid('the run command lists no files');
    const seen = new Set<string>();
    for (const f of cmd.files) {
      try {
        checkTaskFile(f);
      } catch (err) {
        throw invalid((err as Error).message);
      }
      if (seen.has(f.path)) throw invalid(`task file ${f.path} is listed twice`);
      seen.add(f.path);
    }
    if (!seen.has(cmd.executable)) throw invalid(`the executable '${cmd.executable}' is not one of the task's files`);
    let input: Record<string, unknown>;
    try {
      input = parseInput(cmd.inputJson);
    } catch (err) {
      throw invalid((err as Error).message);
    }
    const method = resolveInputMethod(cmd.inputMethod, cmd.executable);
    if (method === 'powershell') {
      throw new RunRefusal(STATUS_AGENT_ERROR, ERROR_KIND.notSupported, `input method powershell (named arguments to ${cmd.executable}) is not supported by this agent`);
    }
    if (cmd.runAs !== '' && cmd.runAs !== userInfo().username) {
      throw new RunRefusal(STATUS_AGENT_ERROR, ERROR_KIND.notSupported, `run_as '${cmd.runAs}' is not supported by this agent (it runs tasks as ${userInfo().username})`);
    }
    return { args: input, method };
  }

  /** Verifies every file in the cache (size and sha256); a mismatch is never silently re-used. */
  private async verifyCache(cmd: RunCommand): Promise<void> {
    for (const f of cmd.files) {
      const problem = await this.options.cache.verify(f);
      if (problem) throw new RunRefusal(STATUS_AGENT_ERROR, ERROR_KIND.fileMismatch, `task file ${problem}`);
    }
  }

  /** Spawns the executable with its input; resolves once it runs, rejects when it cannot start. */
  private async spawnTask(
    executable: string,
    paths: SpoolPaths,
    method: ReturnType<typeof resolveInputMethod>,
    args: Record<string, unknown>,
    cmd: RunCommand,
  ): Promise<{ child: ChildProcess; exited: Promise<ExitStatus> }> {
    const { env, skipped } = taskEnvironment(this.options.env ?? process.env, method, args, { taskId: cmd.taskId, caller: cmd.caller, task: cmd.task });
    if (skipped.length > 0) this.options.log.warn({ taskId: cmd.taskId, keys: skipped }, 'input keys that cannot be variable names are passed on stdin only');
    // Files, not pipes: the output is on disk as it is produced, and does not depend on this
    // process staying alive to drain a pipe.
    const stdout = await open(paths.stdout, 'w', SPOOL_FILE_MODE);
    const stderr = await open(paths.stderr, 'w', SPOOL_FILE_MODE);
    try {
      const child = spawn(executable, [], {
        cwd: paths.dir,
        env,
        // Own session and process group: a restart of the agent does not take the task with
        // it, and a stop signal reaches every process the task started.
        detached: true,
        stdio: [usesStdin(method) ? 'pipe' : 'ignore', stdout.fd, stderr.fd],
        windowsHide: true,
      });
      // Listen for the exit before anything else is awaited: a short task may be gone by then.
      const exited = new Promise<ExitStatus>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', (err) => reject(new RunRefusal(STATUS_AGENT_ERROR, ERROR_KIND.spawnFailed, `cannot start ${cmd.executable}: ${err.message}`)));
      });
      // Later errors (a failed kill) are reported where they happen, not as unhandled events.
      child.on('error', () => undefined);
      if (child.stdin) {
        // The task may exit without reading its input; EPIPE is not the agent's failure.
        child.stdin.on('error', () => undefined);
        child.stdin.end(stdinDocument(args));
      }
      // The task runs now; a pid file that cannot be written is worth a log line, not a failed run.
      await writeFile(paths.pid, String(child.pid), { mode: SPOOL_FILE_MODE }).catch((err: unknown) =>
        this.options.log.warn({ taskId: cmd.taskId, err: (err as Error).message }, 'cannot write the pid file'),
      );
      return { child, exited };
    } finally {
      await stdout.close();
      await stderr.close();
    }
  }

  /** Writes `exitcode`, builds the result from the spool files, and writes `result.json`. */
  private async collect(id: ResultIdentity, paths: SpoolPaths, exit: { exitcode: number; signal: NodeJS.Signals | null; startTime: Date; endTime: Date; stoppedBy?: StopReason; timeoutS: number }): Promise<NodeResult> {
    const { log, spool } = this.options;
    await writeFile(paths.exitcode, String(exit.exitcode), { mode: SPOOL_FILE_MODE }).catch((err: unknown) => log.error({ taskId: id.taskId, err: (err as Error).message }, 'cannot write exitcode'));
    const out = await readCapped(paths.stdout, MAX_RESULT_OUTPUT_BYTES);
    const err = await readCapped(paths.stderr, MAX_RESULT_OUTPUT_BYTES);
    const note = (what: string) => `\n[baton-agent: ${what} truncated after ${MAX_RESULT_OUTPUT_BYTES} bytes; all of it is in ${paths.dir}]\n`;
    const stdout = out.truncated ? Buffer.concat([out.data, Buffer.from(note('stdout'))]) : out.data;
    const stderr = err.data.toString('utf8') + (err.truncated ? note('stderr') : '');
    const result = exitedResult(id, { ...exit, stdout, stderr });
    await spool.writeResult(result).catch((e: unknown) => log.error({ taskId: id.taskId, err: (e as Error).message }, 'cannot write result.json'));
    return result;
  }

  /** SIGTERM to the task's process group now, SIGKILL after the grace period if it still runs. */
  private stop(task: RunningTask, reason: StopReason): void {
    if (task.state !== 'RUNNING') return;
    task.state = 'TERMINATING';
    task.stoppedBy = reason;
    this.options.log.info({ taskId: task.taskId, reason }, 'stopping task');
    this.signalGroup(task, 'SIGTERM');
    // Not cleared when the leader exits: processes it left behind in its group get the SIGKILL too.
    setTimeout(() => {
      if (task.state === 'TERMINATING') task.state = 'KILLED';
      this.signalGroup(task, 'SIGKILL');
    }, this.killGraceMs).unref();
  }

  private signalGroup(task: RunningTask, signal: NodeJS.Signals): void {
    const pid = task.child.pid;
    if (pid === undefined) return;
    try {
      // A negative pid addresses the process group the detached task leads.
      process.kill(-pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') this.options.log.warn({ taskId: task.taskId, signal, err: (err as Error).message }, 'cannot signal task');
    }
  }
}
