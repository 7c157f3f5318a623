import { constants } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { RunCommand } from '../gen/baton/v1/agent_gateway_service';
import { NodeResult } from '../gen/baton/v1/run';
import type { TaskFile } from '../gen/baton/v1/task';
import type { Logger } from '../lib/logger';
import { REDACTED_VALUE } from '../lib/redaction';
import { isTaskId, taskIdProblem } from '../lib/task-id';
import { resolveUnder } from '../lib/task-file-path';
import type { FileCache } from './file-cache';

/**
 * The spool: one directory per task id, `<spool>/<task_id>/` (Choria's layout,
 * docs/choria-compat.md §3.1), holding everything about one run so that it can be reported (and
 * re-reported) without the agent's memory:
 *
 * | file            | written by | content                                                       |
 * |-----------------|------------|---------------------------------------------------------------|
 * | `request.json`  | agent      | the RunCommand as proto JSON, sensitive input values redacted |
 * | `files/<path>`  | agent      | the task's files at their module-relative paths (`_installdir`) |
 * | `start_time`    | agent      | when the wrapper was started, ISO 8601                        |
 * | `wrapper_pid`   | supervisor | `<pid> <start> <supervisor pid> <start>` of the task (task-supervisor.ts); |
 * |                 | or wrapper | or the /bin/sh wrapper's pid (leader of the task's session and group) |
 * | `stdout`        | task       | the task's standard output, written as produced              |
 * | `stderr`        | task       | the task's standard error, written as produced               |
 * | `exitcode`      | supervisor | the exit status, once the task is gone (or the wrapper's last write) |
 * | `stopped`       | agent      | TIMEOUT, CANCEL or KILLED-by-…: why the agent signalled it     |
 * | `result.json`   | agent      | the final NodeResult as proto JSON, written once, sent as is  |
 * | `acked`         | agent      | present once the scheduler acknowledged result.json          |
 *
 * result.json is written once and every (re-)send is that file parsed again, so a result sent
 * before an agent restart and the same result sent after it are identical, which the results
 * service recognises (it stores identical final results once).
 *
 * Every task id is checked with isTaskId before a path is built from it, and every file path
 * goes through resolveUnder: both come from the network.
 */

/** Mode of spool directories. */
export const SPOOL_DIR_MODE = 0o750;

/** Mode of spool files the agent writes (the executable gets 0750 from the runner). */
export const SPOOL_FILE_MODE = 0o640;

/** A task id that is not one (lib/task-id.ts). */
export class InvalidTaskIdError extends Error {
  constructor(readonly taskId: string) {
    super(taskIdProblem(taskId) ?? `task id ${taskId}`);
    this.name = 'InvalidTaskIdError';
  }
}

/** The paths of one run's spool directory. */
export interface SpoolPaths {
  dir: string;
  request: string;
  files: string;
  startTime: string;
  wrapperPid: string;
  stopped: string;
  stdout: string;
  stderr: string;
  exitcode: string;
  result: string;
  acked: string;
}

/**
 * Replaces the values of the named top-level parameters with REDACTED_VALUE. Input that is not a JSON
 * object is redacted as a whole when any parameter is sensitive (it cannot be redacted in part).
 */
export function redactInput(inputJson: string, sensitive: string[]): string {
  if (sensitive.length === 0) return inputJson;
  let input: unknown;
  try {
    input = JSON.parse(inputJson || '{}');
  } catch {
    return JSON.stringify(REDACTED_VALUE);
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return JSON.stringify(REDACTED_VALUE);
  const out = { ...(input as Record<string, unknown>) };
  for (const name of sensitive) if (Object.hasOwn(out, name)) out[name] = REDACTED_VALUE;
  return JSON.stringify(out);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Writes a file through a temp name and a rename, so a reader never sees half of it. */
async function writeAtomically(path: string, content: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, content, { mode: SPOOL_FILE_MODE });
  await rename(tmp, path);
}

/** The spool directory of the agent. */
export class Spool {
  /** The root exists (made once per process; a root removed later fails mkdir loudly). */
  private rootMade = false;

  constructor(
    readonly root: string,
    private readonly log?: Logger,
  ) {}

  /** The paths of a run's spool directory; throws InvalidTaskIdError before building any path. */
  paths(taskId: string): SpoolPaths {
    if (!isTaskId(taskId)) throw new InvalidTaskIdError(taskId);
    // One join; the names are constants, so concatenation gives what join would (this runs
    // several times per task).
    const dir = join(this.root, taskId);
    return {
      dir,
      request: `${dir}/request.json`,
      files: `${dir}/files`,
      startTime: `${dir}/start_time`,
      wrapperPid: `${dir}/wrapper_pid`,
      stopped: `${dir}/stopped`,
      stdout: `${dir}/stdout`,
      stderr: `${dir}/stderr`,
      exitcode: `${dir}/exitcode`,
      result: `${dir}/result.json`,
      acked: `${dir}/acked`,
    };
  }

  /** True when the task id already has a spool directory (it ran, or is running, here). */
  async exists(taskId: string): Promise<boolean> {
    return exists(this.paths(taskId).dir);
  }

  /**
   * Creates the run's spool directory. Returns false when it exists already: mkdir without
   * `recursive` fails with EEXIST, which makes "never run a task id twice" atomic even when two
   * RunCommands for one id race.
   */
  async create(taskId: string): Promise<boolean> {
    const { dir } = this.paths(taskId);
    if (!this.rootMade) {
      await mkdir(this.root, { recursive: true, mode: SPOOL_DIR_MODE });
      this.rootMade = true;
    }
    try {
      await mkdir(dir, { mode: SPOOL_DIR_MODE });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
  }

  /** Writes request.json: the RunCommand with sensitive parameter values redacted. */
  async writeRequest(cmd: RunCommand): Promise<void> {
    const { request } = this.paths(cmd.taskId);
    const redacted: RunCommand = { ...cmd, inputJson: redactInput(cmd.inputJson, cmd.sensitiveParameters) };
    await writeAtomically(request, JSON.stringify(RunCommand.toJSON(redacted), null, 2) + '\n');
  }

  /**
   * Copies each file from the cache to `files/<module-relative path>`. Every path is resolved
   * (and refused if unsafe) before the first copy. Returns the absolute path of each file.
   */
  async layoutFiles(taskId: string, files: TaskFile[], cache: FileCache): Promise<Map<string, string>> {
    const root = this.paths(taskId).files;
    const targets = new Map(files.map((f) => [f.path, resolveUnder(root, f.path)]));
    for (const f of files) {
      const target = targets.get(f.path)!;
      await mkdir(dirname(target), { recursive: true, mode: SPOOL_DIR_MODE });
      // COPYFILE_EXCL: a file listed twice, or a symlink planted in the spool, is an error, not an
      // overwrite.
      await copyFile(cache.pathOf(f.sha256), target, constants.COPYFILE_EXCL);
    }
    return targets;
  }

  /**
   * Writes result.json (atomically) unless the run has one already, and returns the result as
   * stored: the file parsed again, so that what is sent now is what every re-send will be.
   */
  async writeResult(result: NodeResult, first = false): Promise<NodeResult> {
    const path = this.paths(result.taskId).result;
    // `first`: the caller knows no result.json exists (it started the run and saw it end).
    if (!first && (await exists(path))) return (await this.readResult(result.taskId)) ?? result;
    const text = JSON.stringify(NodeResult.toJSON(result)) + '\n';
    await writeAtomically(path, text);
    // Parsing the text just written is what reading the file back gives, one read cheaper.
    return NodeResult.fromJSON(JSON.parse(text));
  }

  /** The run's request.json (sensitive values redacted), or undefined when missing or unreadable. */
  async readRequest(taskId: string): Promise<RunCommand | undefined> {
    try {
      return RunCommand.fromJSON(JSON.parse(await readFile(this.paths(taskId).request, 'utf8')));
    } catch {
      return undefined;
    }
  }

  /** A small spool file's trimmed text, or undefined when it does not exist. */
  async readSmall(path: string): Promise<string | undefined> {
    try {
      return (await readFile(path, 'utf8')).trim();
    } catch {
      return undefined;
    }
  }

  /** Every task id with a directory in the spool (anything else there is ignored). */
  async taskIds(): Promise<string[]> {
    try {
      return (await readdir(this.root)).filter(isTaskId);
    } catch {
      return [];
    }
  }

  /**
   * Removes the directories of acknowledged runs whose result is older than `maxAgeMs`
   * (retention; Choria never cleans up, docs/choria-compat.md §3.1). Runs without a result (running,
   * queued) and unacknowledged results are never removed. Returns the task ids removed.
   */
  async sweep(maxAgeMs: number, keep: (taskId: string) => boolean, nowMs = Date.now()): Promise<string[]> {
    const removed: string[] = [];
    for (const taskId of await this.taskIds()) {
      if (keep(taskId)) continue;
      const p = this.paths(taskId);
      try {
        if (!(await exists(p.acked))) continue;
        if (nowMs - (await stat(p.result)).mtimeMs < maxAgeMs) continue;
        await rm(p.dir, { recursive: true, force: true });
        removed.push(taskId);
      } catch (err) {
        this.log?.warn({ taskId, err: (err as Error).message }, 'cannot sweep a spool directory');
      }
    }
    return removed;
  }

  /** The run's result, or undefined when it has none (yet) or it cannot be read. */
  async readResult(taskId: string): Promise<NodeResult | undefined> {
    const { result } = this.paths(taskId);
    let text: string;
    try {
      text = await readFile(result, 'utf8');
    } catch {
      return undefined;
    }
    try {
      return NodeResult.fromJSON(JSON.parse(text));
    } catch (err) {
      this.log?.warn({ taskId, err: (err as Error).message }, 'unreadable result.json in the spool; skipped');
      return undefined;
    }
  }

  /**
   * Records the scheduler's acknowledgement of a run's result. Returns false (and writes
   * nothing) for an id that is malformed or has no result here.
   */
  async markAcked(taskId: string): Promise<boolean> {
    if (!isTaskId(taskId)) return false;
    const { result, acked } = this.paths(taskId);
    if (!(await exists(result))) return false;
    await writeFile(acked, '', { mode: SPOOL_FILE_MODE });
    return true;
  }

  /** True when the scheduler acknowledged the run's result. */
  async isAcked(taskId: string): Promise<boolean> {
    return exists(this.paths(taskId).acked);
  }

  /** Every result in the spool that has no `acked` marker, oldest start first. */
  async listUnacknowledged(): Promise<NodeResult[]> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch {
      return [];
    }
    const out: NodeResult[] = [];
    for (const name of names) {
      // Anything else in the spool root (temp files, foreign directories) is not a run.
      if (!isTaskId(name) || (await this.isAcked(name))) continue;
      const result = await this.readResult(name);
      if (result) out.push(result);
    }
    return out.sort((a, b) => (a.startTime?.getTime() ?? 0) - (b.startTime?.getTime() ?? 0));
  }
}
