import { isAbsolute, join, relative, sep } from 'node:path';

/**
 * Module-relative task file paths, `<module>/<mount>/<relative path>` (docs/task-format.md §1 item 9).
 * These names travel over the network (metadata → scheduler → agent), and the agent writes
 * files under them, so every reader checks them with `checkTaskFilePath` first: Choria joined
 * the file name into the spool path with no check at all (docs/choria-compat.md §7).
 */

/** The mounts a task file may come from. */
export const TASK_FILE_MOUNTS = ['files', 'lib', 'scripts', 'tasks'] as const;

const MODULE = /^[a-z][a-z0-9_]*$/;
// One path segment: no separators, NUL or control characters, not `.` or `..`.
// eslint-disable-next-line no-control-regex -- control characters are exactly what it rejects
const SEGMENT = /^(?!\.{1,2}$)[^/\\\0-\x1f]+$/;

/** Returns why `path` is not a safe module-relative task file path, or undefined when it is. */
export function taskFilePathProblem(path: string): string | undefined {
  if (path.length === 0) return 'is empty';
  if (path.length > 1024) return 'is longer than 1024 characters';
  if (path.startsWith('/') || isAbsolute(path)) return 'is absolute';
  const segments = path.split('/');
  if (segments.length < 3) return 'must be <module>/<mount>/<file>';
  if (!MODULE.test(segments[0])) return `has an invalid module name '${segments[0]}'`;
  if (!(TASK_FILE_MOUNTS as readonly string[]).includes(segments[1])) return `has mount '${segments[1]}', expected one of ${TASK_FILE_MOUNTS.join(', ')}`;
  const bad = segments.slice(2).find((s) => !SEGMENT.test(s));
  if (bad !== undefined) return bad === '..' || bad === '.' ? 'contains a relative component' : `has an invalid segment '${bad}'`;
  return undefined;
}

/** Throws when `path` is not a safe module-relative task file path. */
export function checkTaskFilePath(path: string): string {
  const problem = taskFilePathProblem(path);
  if (problem) throw new Error(`task file path '${path}' ${problem}`);
  return path;
}

/** Joins a checked task file path under `root`, and proves the result stays inside it. */
export function resolveUnder(root: string, path: string): string {
  const full = join(root, checkTaskFilePath(path));
  const rel = relative(root, full);
  if (rel.startsWith('..') || isAbsolute(rel) || rel.split(sep)[0] === '..') throw new Error(`task file path '${path}' escapes ${root}`);
  return full;
}

/** A lowercase hex sha256, the only name a cache file may have. */
export const SHA256_HEX = /^[0-9a-f]{64}$/;
