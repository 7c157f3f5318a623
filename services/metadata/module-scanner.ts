import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Implementation, Task, TaskError, TaskFile } from '../../gen/baton/v1/task';
import { NAME_SEGMENT, canonicalTaskName } from '../../lib/names';
import { resolveExtraFile, type ResolvedFile } from './extra-files';
import { environmentModulepath } from './environment-modulepath';
import { FileDigests } from './file-digests';
import { ParameterTypes } from './parameters';
import { TypeAliases } from '../../lib/puppet-types';
import { assembleTask, inputMethodOf } from './assemble-task';
import { parseMetadataText, salvageListingFields, validateMetadata, type TaskMetadata } from './task-metadata';
import { TaskLoadError } from './task-load-error';
import { mapLimit } from '../../lib/map-limit';

/**
 * Scans one environment, `<environmentpath>/<env>/modules/<module>/tasks/`, into tasks
 * following docs/task-format.md §1 (Puppet `Puppet::Module::Task`). A task that fails to load is
 * kept with its error so an operator sees it; it never hides the other tasks.
 *
 * The modulepath of an environment is Puppet's: `modulepath` of `<env>/environment.conf`, else
 * `modules:$basemodulepath` (environment-modulepath.ts); other environment.conf settings are
 * not used.
 */

/** One task of a scanned environment: loaded (`task` set) or broken (`error` set). */
export interface CatalogTask {
  /** Canonical name, `<module>::<task>` or `<module>` for init. */
  name: string;
  module: string;
  /** From the metadata, also for a broken task when the metadata could be parsed. */
  description: string;
  private: boolean;
  task?: Task;
  error?: TaskError;
  /** The files of a loaded task and where they are on disk, in `task.files` order. */
  files: ResolvedFile[];
}

/** The tasks of one environment at one point in time. */
export interface ScannedEnvironment {
  name: string;
  /** The environment's directory. */
  dir: string;
  /** Every task, sorted by name, private and broken ones included. */
  tasks: CatalogTask[];
  byName: Map<string, CatalogTask>;
  /** The files of every loaded task by module-relative path: all ReadTaskFile may serve. */
  files: Map<string, string>;
  /** Modules whose tasks directory could not be read (one line each); their tasks are missing. */
  problems: string[];
}

/** Modules scanned at once; more gains little on a small machine and holds more files open. */
export const SCAN_CONCURRENCY = 8;

/** Files that never belong to a task (Puppet `FORBIDDEN_EXTENSIONS`). */
const IGNORED_EXTENSIONS = ['.md', '.conf'];

function byString(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The task name of a file in tasks/: its basename without the last extension (`foo.tar.gz` → `foo.tar`). */
export function taskNameOfFile(file: string): string {
  return file.replace(/\.[^/.]*$/, '');
}

/** Names of the subdirectories of `dir` (following symlinks), or none when it does not exist. */
async function subdirectories(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return [];
    throw err;
  });
  const names: string[] = [];
  for (const e of entries) {
    if (e.isDirectory() || (e.isSymbolicLink() && (await stat(join(dir, e.name)).catch(() => undefined))?.isDirectory())) names.push(e.name);
  }
  return names.sort(byString);
}

/** The regular files (symlinks followed) at the top level of `dir` that can belong to a task. */
async function taskFilesIn(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return [];
    throw err;
  });
  const files: string[] = [];
  for (const e of entries) {
    if (!NAME_SEGMENT.test(taskNameOfFile(e.name))) continue; // silently ignored (docs/task-format.md §1 item 3)
    if (IGNORED_EXTENSIONS.some((ext) => e.name.endsWith(ext))) continue;
    if (e.isFile() || (e.isSymbolicLink() && (await stat(join(dir, e.name)).catch(() => undefined))?.isFile())) files.push(e.name);
  }
  return files.sort(byString);
}

/** What the scanner knows about one module while loading its tasks. */
interface ModuleFiles {
  name: string;
  tasksDir: string;
  /** Every non-metadata file of tasks/: what `implementations` entries may name. */
  executables: string[];
}

/** Loads one task; throws TaskLoadError when it is broken. */
async function loadTask(
  env: string,
  mod: ModuleFiles,
  taskName: string,
  rawMetadata: string | undefined,
  metadata: TaskMetadata,
  modules: ReadonlyMap<string, string>,
  digests: FileDigests,
  types: ParameterTypes,
): Promise<{ task: Task; files: ResolvedFile[] }> {
  const name = canonicalTaskName(mod.name, taskName);
  const what = `task ${name}`;
  const implFile = (file: string): ResolvedFile => ({ path: `${mod.name}/tasks/${file}`, absPath: join(mod.tasksDir, file) });

  const files: ResolvedFile[] = [];
  const implementationFiles: ResolvedFile[] = [];
  const implementations: Implementation[] = [];
  if (metadata.implementations) {
    for (const impl of metadata.implementations) {
      // Any executable of the module's tasks/ may serve, which is how tasks share one script.
      if (!mod.executables.includes(impl.name)) {
        throw new TaskLoadError(
          'puppet.tasks/missing-implementation',
          `${what}: metadata names implementation '${impl.name}', which is not a file in ${mod.name}/tasks/`,
          {
            missing: [impl.name],
          },
        );
      }
      const own: ResolvedFile[] = [];
      for (const entry of impl.files) own.push(...(await resolveExtraFile(entry, modules, what)));
      implementationFiles.push(...own);
      implementations.push({
        path: implFile(impl.name).path,
        requirements: impl.requirements,
        inputMethod: inputMethodOf(impl.inputMethod),
        files: [...new Set(own.map((f) => f.path))],
      });
      files.push(implFile(impl.name));
    }
  } else {
    const own = mod.executables.filter((f) => taskNameOfFile(f) === taskName);
    if (own.length === 0)
      throw new TaskLoadError('puppet.tasks/no-implementation', `${what}: no executable besides the metadata was found in ${mod.name}/tasks/`);
    if (own.length > 1) {
      throw new TaskLoadError(
        'puppet.tasks/multiple-implementations',
        `${what}: several executables were found in ${mod.name}/tasks/ (${own.join(', ')}); define 'implementations' in the metadata to choose between them`,
        { files: own },
      );
    }
    files.push(implFile(own[0]));
  }
  // Implementations first, then top-level extra files, then each implementation's
  // (docs/task-format.md §1 items 9-10), each path once.
  for (const entry of metadata.files) files.push(...(await resolveExtraFile(entry, modules, what)));
  files.push(...implementationFiles);
  const unique = [...new Map(files.map((f) => [f.path, f])).values()];

  const taskFiles: TaskFile[] = [];
  for (const f of unique) {
    const digest = await digests.digest(f.absPath).catch((err: NodeJS.ErrnoException) => {
      throw new TaskLoadError('puppet.tasks/invalid-file', `${what}: cannot read ${f.path}: ${err.code ?? err.message}`, { file: f.path });
    });
    taskFiles.push({ path: f.path, sha256: digest.sha256, sizeBytes: digest.sizeBytes });
  }

  const task = assembleTask({ environment: env, name, metadata, rawMetadata, files: taskFiles, implementations, types });
  return { task, files: unique };
}

/** Options of `scanEnvironment`. */
export interface ScanOptions {
  /** Digests remembered from the previous scan of this environment; default a fresh cache. */
  digests?: FileDigests;
  /** Directories `$basemodulepath` expands to in the environment's modulepath; default none. */
  basemodulepath?: readonly string[];
}

/** Scans the environment `name` in directory `dir`; never rejects for what it finds on disk. */
export async function scanEnvironment(name: string, dir: string, options: ScanOptions = {}): Promise<ScannedEnvironment> {
  const digests = options.digests ?? new FileDigests();
  digests.beginScan();
  const tasks: CatalogTask[] = [];
  const problems: string[] = [];
  let modulepath: string[] = [join(dir, 'modules')];
  try {
    const found = await environmentModulepath(name, dir, options.basemodulepath ?? [], digests);
    modulepath = found.dirs;
    problems.push(...found.problems);
  } catch (err) {
    problems.push(`cannot read ${join(dir, 'environment.conf')}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; using ${modulepath[0]}`);
  }
  // The first directory of the modulepath holding a module of a name wins (Puppet).
  const modules = new Map<string, string>();
  for (const modulesDir of modulepath) {
    try {
      // Directories not named like a module are not modules (docs/task-format.md §1 item 6).
      for (const m of await subdirectories(modulesDir)) if (NAME_SEGMENT.test(m) && !modules.has(m)) modules.set(m, join(modulesDir, m));
    } catch (err) {
      problems.push(`cannot read ${modulesDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  // Module type aliases (`<module>/types/*.pp`) of the whole environment, as Puppet resolves
  // them for parameter types; each alias is parsed only when a parameter uses it.
  const aliases = new TypeAliases();
  for (const [moduleName, moduleDir] of modules) {
    try {
      for (const problem of aliases.addModuleDir(moduleDir)) problems.push(`module ${moduleName}: ${problem}`);
    } catch (err) {
      // An unreadable types/ entry (a dangling link, say) loses that module's aliases only.
      problems.push(`module ${moduleName}: cannot read its types/: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  const types = new ParameterTypes(aliases);

  const scanModule = async (moduleName: string, moduleDir: string): Promise<void> => {
    const tasksDir = join(moduleDir, 'tasks');
    let files: string[];
    try {
      files = await taskFilesIn(tasksDir);
    } catch (err) {
      // One unreadable module must not take the environment down with it.
      problems.push(`module ${moduleName}: cannot read ${tasksDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return;
    }
    const mod: ModuleFiles = { name: moduleName, tasksDir, executables: files.filter((f) => !f.endsWith('.json')) };
    const taskNames = [...new Set(files.map(taskNameOfFile))];
    for (const taskName of taskNames) {
      const canonical = canonicalTaskName(moduleName, taskName);
      const metadataFile = files.includes(`${taskName}.json`) ? `${taskName}.json` : undefined;
      let listing = { description: '', private: false };
      try {
        let raw: string | undefined;
        let doc: unknown = {};
        if (metadataFile) {
          const where = `${moduleName}/tasks/${metadataFile}`;
          raw = await digests.text(join(tasksDir, metadataFile)).catch((err: NodeJS.ErrnoException) => {
            throw new TaskLoadError('puppet.tasks/unreadable-metadata', `task ${canonical}: cannot read ${where}: ${err.code ?? err.message}`);
          });
          doc = parseMetadataText(raw, `task ${canonical}: ${where} is not valid JSON`);
          listing = salvageListingFields(doc);
        }
        const metadata = validateMetadata(doc, `task ${canonical}`);
        const loaded = await loadTask(name, mod, taskName, raw, metadata, modules, digests, types);
        tasks.push({ name: canonical, module: moduleName, ...listing, task: loaded.task, files: loaded.files });
      } catch (err) {
        if (!(err instanceof TaskLoadError)) throw err;
        tasks.push({ name: canonical, module: moduleName, ...listing, error: err.toTaskError(), files: [] });
      }
    }
  };
  // Modules are independent: scanning several at once overlaps their file system waits,
  // which is most of a cold scan. Results are sorted below.
  await mapLimit([...modules], SCAN_CONCURRENCY, (module) => scanModule(...module));
  problems.sort(byString);
  tasks.sort((a, b) => byString(a.name, b.name));
  const fileIndex = new Map<string, string>();
  for (const t of tasks) for (const f of t.files) fileIndex.set(f.path, f.absPath);
  return { name, dir, tasks, byName: new Map(tasks.map((t) => [t.name, t])), files: fileIndex, problems };
}
