import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TASK_FILE_MOUNTS, taskFilePathProblem } from '../../lib/task-file-path';
import { TaskLoadError } from './task-load-error';

/**
 * Resolution of a task's extra `files` entries, `<module>/<mount>/<path>` (docs/task-format.md §1
 * item 9, Puppet `Puppet::Module::Task.find_extra_files`): the module may be any module of
 * the environment, a trailing `/` names a whole directory, relative components are refused.
 */

/** One file a task needs: its module-relative path and where it is on disk. */
export interface ResolvedFile {
  /** `<module>/<mount>/<relative path>`, as served by ReadTaskFile. */
  path: string;
  absPath: string;
}

/**
 * The regular files under `dir`, recursively, as sorted `/`-separated relative paths. Like
 * Ruby's `Dir.glob("dir/**\/*")`, which Puppet uses: dot files are skipped and symlinked
 * directories are not entered (so a link loop cannot hang a scan), while symlinks to regular
 * files are included.
 */
export async function listFilesRecursively(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (e.name.startsWith('.')) continue;
    const rel = prefix + e.name;
    if (e.isDirectory()) out.push(...(await listFilesRecursively(join(dir, e.name), `${rel}/`)));
    else if (e.isFile()) out.push(rel);
    else if (e.isSymbolicLink() && (await stat(join(dir, e.name)).catch(() => undefined))?.isFile()) out.push(rel);
  }
  return out;
}

/** Resolves one `files` entry to the files it names; throws a TaskLoadError naming the entry. */
export async function resolveExtraFile(entry: string, modules: ReadonlyMap<string, string>, what: string): Promise<ResolvedFile[]> {
  const invalid = (why: string) => new TaskLoadError('puppet.tasks/invalid-metadata', `${what}: file '${entry}' ${why}`, { file: entry });
  if (entry.startsWith('/') || /^[A-Za-z]:[\\/]/.test(entry)) throw invalid('must be <module>/<mount>/<path>, not an absolute path');
  const [module, mount, ...rest] = entry.split('/');
  const isDirectory = entry.endsWith('/');
  const segments = isDirectory ? rest.slice(0, -1) : rest;
  const moduleDir = modules.get(module);
  if (mount === undefined) throw invalid('must be <module>/<mount>/<path>');
  if (moduleDir === undefined) throw invalid(`names module '${module}', which is not in this environment`);
  if (!(TASK_FILE_MOUNTS as readonly string[]).includes(mount)) throw invalid(`has mount '${mount}', expected one of ${TASK_FILE_MOUNTS.join(', ')}`);
  if (segments.some((s) => s === '..' || s === '.')) throw invalid('contains a relative component; file pathnames cannot include relative paths');
  if (segments.some((s) => s === '')) throw invalid('contains an empty path segment');

  const absPath = join(moduleDir, mount, ...segments);
  const st = await stat(absPath).catch(() => undefined);
  if (!st) throw new TaskLoadError('puppet.tasks/invalid-file', `${what}: could not find file '${entry}' on disk`, { file: entry });

  let files: ResolvedFile[];
  if (st.isDirectory()) {
    if (!isDirectory) throw invalid('is a directory; directories in task metadata must end with a trailing /');
    const base = [module, mount, ...segments].join('/');
    const listed = await listFilesRecursively(absPath).catch((err: NodeJS.ErrnoException) => {
      throw new TaskLoadError('puppet.tasks/invalid-file', `${what}: cannot read directory '${entry}': ${err.code ?? err.message}`, { file: entry });
    });
    files = listed.map((rel) => ({ path: `${base}/${rel}`, absPath: join(absPath, ...rel.split('/')) }));
  } else if (st.isFile()) {
    if (isDirectory) throw invalid('is a file; only directories may end with a trailing /');
    files = [{ path: entry, absPath }];
  } else {
    throw new TaskLoadError('puppet.tasks/invalid-file', `${what}: file '${entry}' is neither a regular file nor a directory`, { file: entry });
  }
  // Every path travels to agents, which lay files out under it: refuse what they would refuse.
  for (const f of files) {
    const problem = taskFilePathProblem(f.path);
    if (problem) throw new TaskLoadError('puppet.tasks/invalid-file', `${what}: file path '${f.path}' ${problem}`, { file: f.path });
  }
  return files;
}
