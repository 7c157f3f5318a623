import { appendFileSync, writeFileSync } from 'node:fs';
import { chmod, chown, open, readdir, stat, writeFile } from 'node:fs/promises';
import { constants as osConstants, userInfo } from 'node:os';
import { join } from 'node:path';
import type { RunCommand, TaskStarted } from '../gen/baton/v1/agent_gateway_service';
import { NodeState, nodeStateToJSON, type NodeResult } from '../gen/baton/v1/run';
import type { Logger } from '../lib/logger';
import { taskIdProblem } from '../lib/task-id';
import { checkTaskFile, type FileCache } from './file-cache';
import { chooseImplementation, NoImplementationError, type ChosenImplementation } from './implementation';
import {
  ERROR_KIND,
  STATUS_AGENT_ERROR,
  STATUS_INVALID_DATA,
  exitedResult,
  notStartedResult,
  redactSensitive,
  type ResultIdentity,
  type StopReason,
} from './node-result';
import { dropPrivilegesArgv, findSetpriv, lookupUser, runAsEnvironment, RunAsError, type RunAsUser } from './run-as';
import { SPOOL_FILE_MODE, type Spool, type SpoolPaths } from './spool';
import { parseInput, resolveInputMethod, stdinDocument, taskArguments, taskEnvironment, usesStdin } from './task-input';
import { processSupervisor, runAlive, type SupervisedTask, type TaskSupervisor } from './task-supervisor';
import { interpreterProblem, spawnWrapper, type WrapperSpawn } from './task-wrapper';

/**
 * Runs tasks (docs/agent-protocol.md §5): checks the command, verifies the cached files again,
 * creates the spool directory (once per task id, ever), lays the files out, waits for a slot
 * (max-concurrent-tasks), and starts the task under the wrapper (task-wrapper.ts) in its own
 * session. Everything about the run is in the spool, written by the wrapper, so the result is
 * built from the spool alone — by this process when the task ends, or by the next agent process
 * (`recover`) when the agent was not running then.
 */

/** Cancels of task ids not (yet) held that are remembered: far more than the runs that can be in flight to one node. */
const EARLY_CANCELS_KEPT = 1_024;
/** Grace period between SIGTERM and SIGKILL when stopping a task (timeout or cancel). */
export const DEFAULT_KILL_GRACE_MS = 10_000;

/** Default most bytes of stdout, and of stderr, put in a result; the spool keeps all of it. */
export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;

/**
 * Highest `max-output-bytes` an agent accepts, in bytes. A TaskFinished carries stdout and
 * stderr up to the cap plus the value parsed from stdout (a protobuf Struct, up to ~5x the JSON
 * text), and must stay under the scheduler's 16 MiB message limit (lib/grpc-server.ts
 * SERVER_MAX_RECEIVE_MESSAGE_BYTES): a result over it would be refused on every reconnect,
 * and the agent would never get it acknowledged. The previous ceiling, 64 MiB, allowed that.
 */
export const MAX_OUTPUT_BYTES_CEILING = 2 * 1024 * 1024;

/** Default most tasks running at once on a node; more wait in a queue. */
export const DEFAULT_MAX_CONCURRENT_TASKS = 4;

/** How often a task the agent adopted after a restart (not its child) is checked, in ms. */
export const DEFAULT_POLL_INTERVAL_MS = 200;

/**
 * How long an executable's interpreter, once found usable, is not looked up again, in ms: a
 * removed interpreter is then reported as the exit status 127 of the task for at most this long.
 */
export const INTERPRETER_CHECK_TTL_MS = 60_000;

/** Most executables whose interpreter check is remembered. */
const INTERPRETER_CHECK_ENTRIES = 1024;

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
  /** Most bytes per stream put in a result; default DEFAULT_MAX_OUTPUT_BYTES. */
  maxOutputBytes?: number;
  /** Most tasks running at once; default DEFAULT_MAX_CONCURRENT_TASKS. */
  maxConcurrentTasks?: number;
  /** The node's features (implementation.ts agentFeatures); default `shell` only. */
  features?: readonly string[];
  /** Check interval of adopted tasks in ms; default DEFAULT_POLL_INTERVAL_MS. */
  pollIntervalMs?: number;
  /**
   * Who forks the wrappers: the process's task supervisor (task-supervisor.ts; the default when
   * perl is installed), or null for one /bin/sh wrapper spawned by this process per task.
   */
  supervisor?: TaskSupervisor | null;
}

/**
 * States of a task the runner holds:
 * - QUEUED: laid out, waiting for a slot (initial state when all slots are taken);
 * - RUNNING: the wrapper was started (initial state otherwise, and of an adopted task);
 * - TERMINATING: SIGTERM sent to its process group by a timeout or a CancelCommand;
 * - KILLED: still alive after the grace period; SIGKILL sent to the process group;
 * - EXITED: the wrapper ended; the result is being built and reported (final).
 */
type TaskState = 'QUEUED' | 'RUNNING' | 'TERMINATING' | 'KILLED' | 'EXITED';

interface HeldTask {
  taskId: string;
  state: TaskState;
  /** sha256 of its files: cache files in use, never swept. */
  sha256s: string[];
  pid?: number;
  /** Set when this process started the task: what it wrote to the spool, kept in memory. */
  known?: KnownRun;
  stoppedBy?: StopReason;
  timeoutTimer?: NodeJS.Timeout;
  /** Lets a QUEUED task go on (to start, or to report its cancel). */
  release?: () => void;
}

/** What a process that started a run knows of it without reading the spool back. */
interface KnownRun {
  request: RunCommand;
  startTime: Date;
  /** The text written to `stopped`, if anything was. */
  stopped?: string;
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

/** What `check` found out about a command. */
interface CheckedCommand {
  args: Record<string, unknown>;
  method: ReturnType<typeof resolveInputMethod>;
  chosen: ChosenImplementation;
  runAs?: { user: RunAsUser; setpriv: string };
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

function signalName(n: number): NodeJS.Signals | null {
  const hit = Object.entries(osConstants.signals as Record<string, number>).find(([, v]) => v === n);
  return hit ? (hit[0] as NodeJS.Signals) : null;
}

/** Makes `path` and everything under it owned by uid:gid (the spool of a run_as task). */
async function chownTree(path: string, uid: number, gid: number): Promise<void> {
  await chown(path, uid, gid);
  if (!(await stat(path)).isDirectory()) return;
  for (const name of await readdir(path)) await chownTree(join(path, name), uid, gid);
}

/** Runs tasks and keeps track of the ones queued and running. */
export class TaskRunner {
  private readonly tasks = new Map<string, HeldTask>();
  /** Task ids cancelled while not held here, oldest first (rememberEarlyCancel). */
  private readonly earlyCancels = new Set<string>();
  private readonly queue: HeldTask[] = [];
  private readonly killGraceMs: number;
  private readonly maxOutputBytes: number;
  private readonly maxConcurrent: number;
  private readonly features: readonly string[];
  private readonly setpriv = findSetpriv();
  private readonly supervisor: TaskSupervisor | undefined;
  /** sha256 of executables whose interpreter was found usable, and when (ms). */
  private readonly interpreterChecked = new Map<string, number>();
  /** The agent's user, looked up once: it is on the path of every run. */
  private readonly me = userInfo().username;

  constructor(private readonly options: TaskRunnerOptions) {
    this.killGraceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
    this.maxOutputBytes = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    this.maxConcurrent = Math.max(1, options.maxConcurrentTasks ?? DEFAULT_MAX_CONCURRENT_TASKS);
    this.features = options.features ?? ['shell'];
    this.supervisor = options.supervisor === undefined ? processSupervisor() : (options.supervisor ?? undefined);
  }

  /** Number of tasks started and not finished (for heartbeats; queued ones excluded). */
  get runningCount(): number {
    return [...this.tasks.values()].filter((t) => t.state !== 'QUEUED').length;
  }

  /** Number of tasks waiting for a slot. */
  get queuedCount(): number {
    return this.queue.length;
  }

  /** True when the task id is queued or running here. */
  isRunning(taskId: string): boolean {
    return this.tasks.has(taskId);
  }

  /** sha256 of every file of a queued or running task (cache files retention must keep). */
  filesInUse(): Set<string> {
    return new Set([...this.tasks.values()].flatMap((t) => t.sha256s));
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
    const taskIdWrong = taskIdProblem(cmd.taskId);
    if (taskIdWrong !== undefined) return report(refused(new RunRefusal(STATUS_INVALID_DATA, ERROR_KIND.invalidCommand, taskIdWrong)));
    if (await spool.exists(cmd.taskId)) return this.duplicate(cmd, events);
    let checked: CheckedCommand;
    try {
      checked = this.check(cmd);
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
    const args = taskArguments(checked.args, { task: cmd.task, installdir: paths.files, noop: cmd.noop });
    const task: HeldTask = { taskId: cmd.taskId, state: 'QUEUED', sha256s: cmd.files.map((f) => f.sha256) };
    let executable: string;
    try {
      try {
        const [, laidOut] = await Promise.all([spool.writeRequest(cmd), spool.layoutFiles(cmd.taskId, cmd.files, this.options.cache)]);
        executable = laidOut.get(checked.chosen.path)!;
        await chmod(executable, EXECUTABLE_MODE);
        if (checked.runAs) await this.prepareRunAs(paths, checked.runAs.user);
      } catch (err) {
        throw new Error(`cannot lay the task out in ${paths.dir}: ${(err as Error).message}`);
      }
      const problem = await this.interpreterProblem(executable, cmd.files.find((f) => f.path === checked.chosen.path)!.sha256);
      if (problem) throw new RunRefusal(STATUS_AGENT_ERROR, ERROR_KIND.spawnFailed, `cannot start ${checked.chosen.path}: ${problem}`);
    } catch (err) {
      // From here on the spool directory exists, so the result is kept and re-sent until acked.
      return report(await this.keep(refused(err)));
    }

    this.tasks.set(cmd.taskId, task);
    // A cancel that came while the command was checked and laid out found nothing to stop.
    if (this.earlyCancels.delete(cmd.taskId)) return report(await this.cancelledBeforeStart(id));
    await Promise.all(cmd.files.map((f) => this.options.cache.touch(f.sha256)));
    if (this.active() >= this.maxConcurrent) {
      log.info({ taskId: cmd.taskId, running: this.active(), max: this.maxConcurrent }, 'task queued: the node runs its maximum of tasks');
      await new Promise<void>((resolve) => {
        task.release = resolve;
        this.queue.push(task);
      });
      if (task.stoppedBy === 'CANCEL') return report(await this.cancelledBeforeStart(id));
    }

    const { env, skipped } = taskEnvironment(checked.runAs ? runAsEnvironment(checked.runAs.user) : (this.options.env ?? process.env), checked.method, args, {
      taskId: cmd.taskId,
      caller: cmd.caller,
      task: cmd.task,
    });
    if (skipped.length > 0) log.warn({ taskId: cmd.taskId, keys: skipped }, 'input keys that cannot be variable names are passed on stdin only');
    const argv = checked.runAs ? [...dropPrivilegesArgv(checked.runAs.setpriv, checked.runAs.user), executable] : [executable];
    let exited: Promise<boolean>;
    const startTime = new Date();
    try {
      task.state = 'RUNNING';
      // Written before the start, while the CPU is not shared with the new process yet: the
      // start time is known to any later agent process as soon as the wrapper can exist.
      await writeFile(paths.startTime, startTime.toISOString(), { mode: SPOOL_FILE_MODE });
      const spawned = await this.startWrapper({ dir: paths.dir, argv, env, stdin: usesStdin(checked.method) ? stdinDocument(args) : undefined });
      task.known = { request: cmd, startTime };
      task.pid = spawned.pid;
      exited = spawned.exited;
    } catch (err) {
      this.forget(task);
      return report(
        await this.keep(refused(new RunRefusal(STATUS_AGENT_ERROR, ERROR_KIND.spawnFailed, `cannot start ${checked.chosen.path}: ${(err as Error).message}`))),
      );
    }
    if (cmd.timeoutS > 0) task.timeoutTimer = setTimeout(() => this.stop(task, 'TIMEOUT'), cmd.timeoutS * 1000);
    log.info({ taskId: cmd.taskId, task: cmd.task, taskPid: task.pid, implementation: checked.chosen.path }, 'task started');
    events.started({ taskId: cmd.taskId, startTime });
    // False: the supervisor ended first; the wrapper records the exit status, watched by pid.
    if (!(await exited)) await this.watch(task);
    return this.complete(task, events);
  }

  /** Starts the wrapper through the supervisor, or spawns it from this process without one. */
  private async startWrapper(w: WrapperSpawn): Promise<SupervisedTask> {
    if (this.supervisor) return this.supervisor.launch(w);
    const { child, exited } = await spawnWrapper(w);
    return { pid: child.pid!, exited: exited.then(() => true) };
  }

  /** Resolves once the run can no longer change (runAlive; checked every poll interval). */
  private async watch(task: HeldTask): Promise<void> {
    const { spool } = this.options;
    const paths = spool.paths(task.taskId);
    const record = await spool.readSmall(paths.wrapperPid);
    const interval = this.options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    while (await runAlive(record, paths.dir)) await new Promise((r) => setTimeout(r, interval));
  }

  /**
   * Stops a queued or running task (CancelCommand, docs/agent-protocol.md §7): a queued one is
   * reported CANCELLED without starting; a running one gets SIGTERM to its process group and
   * SIGKILL after the grace period. Returns false when the task id is not here.
   */
  cancel(taskId: string): boolean {
    const task = this.tasks.get(taskId);
    if (!task) {
      this.rememberEarlyCancel(taskId);
      return false;
    }
    if (task.state === 'QUEUED') {
      task.stoppedBy = 'CANCEL';
      this.queue.splice(this.queue.indexOf(task), 1);
      task.release?.();
      return true;
    }
    this.stop(task, 'CANCEL');
    return true;
  }

  /**
   * Remembers a cancel for a task id not held here: its run command may be on its way, or
   * being checked and laid out (a cancel can reach the agent first, on a busy scheduler or
   * agent), and it must then not start. The oldest are forgotten past EARLY_CANCELS_KEPT.
   */
  private rememberEarlyCancel(taskId: string): void {
    this.earlyCancels.add(taskId);
    if (this.earlyCancels.size > EARLY_CANCELS_KEPT) this.earlyCancels.delete(this.earlyCancels.values().next().value!);
  }

  /** Reports a held task cancelled before it started, and lets it go. */
  private async cancelledBeforeStart(id: ResultIdentity): Promise<NodeResult> {
    this.tasks.delete(id.taskId);
    const result = notStartedResult(id, STATUS_AGENT_ERROR, ERROR_KIND.cancelled, `node ${id.host}: the task was cancelled before it started`);
    return this.keep({ ...result, state: NodeState.NODE_STATE_CANCELLED });
  }

  /**
   * Picks up every run in the spool after a (re)start, since a task outlives its agent: a finished
   * run without a result gets its result.json now (reported with the next Hello, like every
   * unacknowledged result); a run whose wrapper still lives is watched until it ends and then
   * reported through `events`; a run whose wrapper is gone without an exit status is reported
   * failed (`baton.tasks/wrapper-died`). Resolves once every finished run has its result.json.
   */
  async recover(events: TaskEvents): Promise<{ finished: number; adopted: number }> {
    const { spool, log } = this.options;
    let finished = 0;
    let adopted = 0;
    for (const taskId of await spool.taskIds()) {
      if (this.tasks.has(taskId)) continue;
      const paths = spool.paths(taskId);
      if ((await spool.readSmall(paths.result)) !== undefined) continue;
      const record = await spool.readSmall(paths.wrapperPid);
      // Alive means not finished, whatever the spool says: the exit status is its last write.
      if (await runAlive(record, paths.dir)) {
        await this.adopt(taskId, Number(record!.split(/\s+/)[0]), events);
        adopted++;
        continue;
      }
      const result = await this.finish(taskId);
      log.info({ taskId, state: nodeStateToJSON(result.state) }, 'run found finished in the spool; reporting it');
      finished++;
    }
    return { finished, adopted };
  }

  /** Watches a task whose wrapper outlived an earlier agent process, then reports it. */
  private async adopt(taskId: string, pid: number, events: TaskEvents): Promise<void> {
    const { spool, log } = this.options;
    const paths = spool.paths(taskId);
    const request = await spool.readRequest(taskId);
    const task: HeldTask = { taskId, state: 'RUNNING', pid, sha256s: request?.files.map((f) => f.sha256) ?? [] };
    this.tasks.set(taskId, task);
    const stopped = await spool.readSmall(paths.stopped);
    if (stopped) {
      // An earlier agent process was stopping it: finish the job with a SIGKILL after the grace.
      task.stoppedBy = stopped.startsWith('CANCEL') ? 'CANCEL' : 'TIMEOUT';
      task.state = 'TERMINATING';
      this.escalate(task);
    } else if (request && request.timeoutS > 0) {
      const started = Date.parse((await spool.readSmall(paths.startTime)) ?? '') || Date.now();
      const left = Math.max(0, started + request.timeoutS * 1000 - Date.now());
      task.timeoutTimer = setTimeout(() => this.stop(task, 'TIMEOUT'), left);
    }
    log.info({ taskId, pid }, 'task from an earlier agent process still runs; watching it');
    void (async () => {
      await this.watch(task);
      await this.complete(task, events);
    })().catch((err: unknown) => log.error({ taskId, err: (err as Error).message }, 'watching an adopted task failed'));
  }

  /** The wrapper ended: builds, keeps and reports the result, and lets a queued task start. */
  private async complete(task: HeldTask, events: TaskEvents): Promise<NodeResult> {
    this.forget(task);
    const result = await this.finish(task.taskId, task.known);
    this.options.log.info({ taskId: task.taskId, exitcode: result.exitcode, state: nodeStateToJSON(result.state) }, 'task exited');
    this.options.log.debug({ taskId: task.taskId, value: redactSensitive(result.value) }, 'task result');
    events.finished(result);
    return result;
  }

  /** Drops a task that ended (or never started) and starts the next queued one. */
  private forget(task: HeldTask): void {
    task.state = 'EXITED';
    clearTimeout(task.timeoutTimer);
    this.tasks.delete(task.taskId);
    while (this.queue.length > 0 && this.active() < this.maxConcurrent) {
      const next = this.queue.shift()!;
      next.state = 'RUNNING';
      next.release?.();
    }
  }

  /** Tasks holding a slot (started, or released from the queue and starting). */
  private active(): number {
    return [...this.tasks.values()].filter((t) => t.state !== 'QUEUED').length;
  }

  /**
   * Writes a result to the spool once; returns it as stored. `first`: no result.json can exist
   * (this process started the run and saw it end), so the check for one is skipped.
   */
  private async keep(result: NodeResult, first = false): Promise<NodeResult> {
    try {
      return await this.options.spool.writeResult(result, first);
    } catch (err) {
      this.options.log.error({ taskId: result.taskId, err: (err as Error).message }, 'cannot write result.json');
      return result;
    }
  }

  /**
   * The run's result, built from its spool directory only (so this process and a later one
   * build the same), written to result.json once; an existing result.json is returned as is.
   */
  private async finish(taskId: string, known?: KnownRun): Promise<NodeResult> {
    const { spool, identity } = this.options;
    // `known`: this process started the wrapper and saw it end, so no result.json exists yet,
    // and what it wrote itself (request.json, start_time, stopped) need not be read back.
    const existing = known ? undefined : await spool.readResult(taskId);
    if (existing) return existing;
    const paths = spool.paths(taskId);
    // Independent reads, at once: this is on the path of every result (bench/agent-bench.ts).
    const [request, startText, stoppedText, exitText, out, err] = await Promise.all([
      known ? known.request : spool.readRequest(taskId),
      known ? known.startTime.toISOString() : spool.readSmall(paths.startTime),
      known ? known.stopped : spool.readSmall(paths.stopped),
      spool.readSmall(paths.exitcode),
      readCapped(paths.stdout, this.maxOutputBytes),
      readCapped(paths.stderr, this.maxOutputBytes),
    ]);
    const id: ResultIdentity = { host: identity, taskId, task: request?.task ?? '', caller: request?.caller ?? '' };
    const startTime = startText && !Number.isNaN(Date.parse(startText)) ? new Date(startText) : (await stat(paths.dir)).mtime;
    const stopped = stoppedText ?? '';
    const stoppedBy: StopReason | undefined = stopped.startsWith('CANCEL') ? 'CANCEL' : stopped.startsWith('TIMEOUT') ? 'TIMEOUT' : undefined;
    const timeoutS = request?.timeoutS ?? 0;
    let exitcode: number;
    let endTime: Date;
    if (exitText !== undefined && /^\d+$/.test(exitText)) {
      exitcode = Number(exitText);
      endTime = (await stat(paths.exitcode)).mtime;
    } else if (stopped.endsWith('KILLED')) {
      // SIGKILL to the group took the wrapper with the task.
      exitcode = 128 + 9;
      endTime = (await stat(paths.stopped)).mtime;
    } else if ((await spool.readSmall(paths.wrapperPid)) === undefined) {
      const msg = stoppedBy === 'CANCEL' ? 'the task was cancelled before it started' : 'the agent stopped before this queued task started; it was not run';
      const result = notStartedResult(
        id,
        STATUS_AGENT_ERROR,
        stoppedBy === 'CANCEL' ? ERROR_KIND.cancelled : ERROR_KIND.notStarted,
        `node ${identity}: ${msg}`,
        startTime,
      );
      return this.keep(stoppedBy === 'CANCEL' ? { ...result, state: NodeState.NODE_STATE_CANCELLED } : result);
    } else {
      const result = notStartedResult(
        id,
        STATUS_AGENT_ERROR,
        ERROR_KIND.wrapperDied,
        `node ${identity}: the task's wrapper ended without recording an exit status (killed, or the node restarted); its output is in ${paths.dir}`,
        startTime,
      );
      return this.keep({ ...result, completed: true });
    }
    const cap = this.maxOutputBytes;
    const note = (what: string) => `\n[baton-agent: ${what} truncated after ${cap} bytes; all of it is in ${paths.dir}]\n`;
    const stdout = out.truncated ? Buffer.concat([out.data, Buffer.from(note('stdout'))]) : out.data;
    const stderr = err.data.toString('utf8') + (err.truncated ? note('stderr') : '');
    const signal = stoppedBy && exitcode > 128 ? signalName(exitcode - 128) : null;
    return this.keep(exitedResult(id, { stdout, stderr, exitcode, signal, startTime, endTime, stoppedBy, timeoutS }), known !== undefined);
  }

  /** A command for a task id that has a spool directory: re-send its result, or ignore it. */
  private async duplicate(cmd: RunCommand, events: TaskEvents): Promise<NodeResult | undefined> {
    const previous = await this.options.spool.readResult(cmd.taskId);
    this.options.log.info({ taskId: cmd.taskId, hasResult: previous !== undefined }, 'task id ran here already; not running it again');
    if (previous) events.finished(previous);
    return previous;
  }

  /** Validates the command without touching the disk; throws RunRefusal. */
  private check(cmd: RunCommand): CheckedCommand {
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
    let chosen: ChosenImplementation;
    try {
      chosen = chooseImplementation(cmd.task, cmd.implementations, { path: cmd.executable, inputMethod: cmd.inputMethod }, this.features);
    } catch (err) {
      if (err instanceof NoImplementationError) throw new RunRefusal(STATUS_AGENT_ERROR, ERROR_KIND.noImplementation, err.message);
      throw err;
    }
    if (!seen.has(chosen.path)) throw invalid(`the executable '${chosen.path}' is not one of the task's files`);
    let input: Record<string, unknown>;
    try {
      input = parseInput(cmd.inputJson);
    } catch (err) {
      throw invalid((err as Error).message);
    }
    // docs/task-format.md §5.6: `_noop` only for a task that declares supports_noop; Bolt's message.
    if (cmd.noop && !cmd.supportsNoop) throw new RunRefusal(STATUS_AGENT_ERROR, ERROR_KIND.noopNotSupported, 'Task does not support noop');
    const method = resolveInputMethod(chosen.inputMethod, chosen.path);
    if (method === 'powershell') {
      throw new RunRefusal(
        STATUS_AGENT_ERROR,
        ERROR_KIND.notSupported,
        `input method powershell (named arguments to ${chosen.path}) is not supported by this agent`,
      );
    }
    return { args: input, method, chosen, runAs: this.checkRunAs(cmd.runAs) };
  }

  /** run_as: nothing to do for the agent's own user; root only otherwise; throws RunRefusal. */
  private checkRunAs(runAs: string): CheckedCommand['runAs'] {
    const me = this.me;
    if (runAs === '' || runAs === me) return undefined;
    const refuse = (msg: string) => new RunRefusal(STATUS_AGENT_ERROR, ERROR_KIND.notSupported, msg);
    if (process.getuid?.() !== 0) throw refuse(`run_as '${runAs}' needs the agent to run as root; it runs as ${me}`);
    if (!this.setpriv) throw refuse(`run_as '${runAs}' needs setpriv (util-linux) to set the user's groups, and it is not installed`);
    try {
      return { user: lookupUser(runAs), setpriv: this.setpriv };
    } catch (err) {
      if (err instanceof RunAsError) throw refuse(err.message);
      throw err;
    }
  }

  /**
   * Gives the run's spool directory to the run_as user (the task reads its files and works in
   * it; the wrapper, still root, writes the output files) and lets other users traverse, not
   * list, the spool root: task ids are 128 random bits.
   */
  private async prepareRunAs(paths: SpoolPaths, user: RunAsUser): Promise<void> {
    await chownTree(paths.dir, user.uid, user.gid);
    await chmod(this.options.spool.root, 0o711);
  }

  /**
   * interpreterProblem, with the `#!` line's verdict kept per file content (sha256): the
   * interpreter is looked up again only when the last look found no problem… or is old.
   */
  private async interpreterProblem(executable: string, sha256: string): Promise<string | undefined> {
    const now = Date.now();
    const seen = this.interpreterChecked.get(sha256);
    if (seen !== undefined && now - seen < INTERPRETER_CHECK_TTL_MS) return undefined;
    const problem = await interpreterProblem(executable);
    if (problem === undefined) {
      if (this.interpreterChecked.size >= INTERPRETER_CHECK_ENTRIES) this.interpreterChecked.clear();
      this.interpreterChecked.set(sha256, now);
    }
    return problem;
  }

  /** Verifies every file in the cache (size and sha256); a mismatch is never silently re-used. */
  private async verifyCache(cmd: RunCommand): Promise<void> {
    for (const f of cmd.files) {
      const problem = await this.options.cache.verify(f);
      if (problem) throw new RunRefusal(STATUS_AGENT_ERROR, ERROR_KIND.fileMismatch, `task file ${problem}`);
    }
  }

  /** SIGTERM to the task's process group now, SIGKILL after the grace period if it still runs. */
  private stop(task: HeldTask, reason: StopReason): void {
    if (task.state !== 'RUNNING') return;
    task.state = 'TERMINATING';
    task.stoppedBy = reason;
    this.options.log.info({ taskId: task.taskId, reason }, 'stopping task');
    // Recorded before the signal, so that the result says why even if the agent dies now.
    this.record(task, reason);
    this.signalGroup(task, 'SIGTERM');
    this.escalate(task);
  }

  /** SIGKILL to the group after the grace period, unless the task is gone by then. */
  private escalate(task: HeldTask): void {
    setTimeout(() => {
      if (task.state !== 'TERMINATING') return;
      task.state = 'KILLED';
      this.record(task, `${task.stoppedBy ?? 'TIMEOUT'} KILLED`);
      this.signalGroup(task, 'SIGKILL');
    }, this.killGraceMs).unref();
  }

  /** Writes why the agent signalled the task to `stopped` (best effort: the signal matters more). */
  private record(task: HeldTask, text: string): void {
    if (task.known) task.known.stopped = text;
    const path = this.options.spool.paths(task.taskId).stopped;
    try {
      if (text.endsWith('KILLED')) appendFileSync(path, '');
      writeFileSync(path, text, { mode: SPOOL_FILE_MODE });
    } catch (err) {
      this.options.log.warn({ taskId: task.taskId, err: (err as Error).message }, 'cannot record why the task was stopped');
    }
  }

  private signalGroup(task: HeldTask, signal: NodeJS.Signals): void {
    const pid = task.pid;
    if (pid === undefined) return;
    try {
      // A negative pid addresses the process group the detached wrapper leads.
      process.kill(-pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH')
        this.options.log.warn({ taskId: task.taskId, signal, err: (err as Error).message }, 'cannot signal task');
    }
  }
}
