import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * What the run benchmark reads about processes from /proc (Linux only): CPU time, resident
 * memory, and which of this process's children runs what. Reading /proc costs nothing in the
 * measured processes, unlike asking them over IPC.
 */

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (usually 100). */
export const CLOCK_TICKS_PER_S = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** Fields of /proc/<pid>/stat after the command name (which may itself hold spaces or parentheses). */
function statFields(pid: number): string[] {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/**
 * User plus system CPU time a process has used so far, in ms (resolution: one clock tick);
 * with `children`, also that of its children it has waited for (the spawned scripts).
 */
export function cpuTimeMs(pid: number, children = false): number {
  const f = statFields(pid);
  // After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14), i.e.
  // fields 14 to 17 of proc(5).
  const ticks = Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0);
  return (ticks * 1000) / CLOCK_TICKS_PER_S;
}

/**
 * Time the main thread of a process has spent runnable but waiting for a CPU so far, in ms
 * (/proc/<pid>/schedstat; 0 where the kernel does not keep it): on a machine shared by more busy
 * processes than cores, a process that was slow for want of CPU shows it here, not in its CPU time.
 */
export function runQueueWaitMs(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e6 || 0;
  } catch {
    return 0;
  }
}

/**
 * CPU time of a process tree so far, in ms: the processes in `roots`, every live descendant,
 * and every process whose command line contains `marker` (the task wrappers, which run in a
 * session of their own and may outlive their parent), each with the CPU of the children it has
 * reaped. A process that exits between two readings is counted through its parent's reaped
 * children, so the difference of two readings is the tree's CPU in between.
 */
export function treeCpuMs(roots: number[], marker?: string): number {
  const parentOf = new Map<number, number>();
  const ticks = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      const f = statFields(pid);
      parentOf.set(pid, Number(f[1]));
      ticks.set(pid, Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]));
    } catch {
      // the process ended while we looked
    }
  }
  const inTree = new Set(roots);
  const isInTree = (pid: number): boolean => {
    const path: number[] = [];
    for (let p: number | undefined = pid; p !== undefined && p > 1; p = parentOf.get(p)) {
      if (inTree.has(p)) {
        for (const q of path) inTree.add(q);
        return true;
      }
      path.push(p);
    }
    return false;
  };
  let total = 0;
  for (const [pid, t] of ticks) {
    if (isInTree(pid) || (marker !== undefined && cmdlineOf(pid).includes(marker))) total += t;
  }
  return (total * 1000) / CLOCK_TICKS_PER_S;
}

function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** Resident set size of a process now, in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** The pid of the direct child of `parentPid` whose command line contains `needle`; throws when there is none. */
export function childPid(needle: string, parentPid = process.pid): number {
  const [pid] = childPids([parentPid], needle);
  if (pid === undefined) throw new Error(`no child process of ${parentPid} runs ${needle}`);
  return pid;
}

/** Pids of the live children of `parents` whose command line contains `needle`. */
export function childPids(parents: number[], needle: string): number[] {
  const wanted = new Set(parents);
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (wanted.has(Number(statFields(Number(entry))[1])) && cmdlineOf(Number(entry)).includes(needle)) found.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

/** This process's soft limit of open files (RLIMIT_NOFILE), from /proc/self/limits. */
export function openFileLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  if (!m) throw new Error('no "Max open files" line in /proc/self/limits');
  return m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

/**
 * Raises this process's open-file limit (soft and hard) to at least `wanted`, so the processes
 * it starts afterwards (the services, the agent workers) inherit it. Node cannot call setrlimit
 * itself; util-linux's prlimit can set another process's limits. Raising the hard limit needs
 * root (or CAP_SYS_RESOURCE); without it, throws naming the limit and how to raise it.
 */
export function raiseOpenFileLimit(wanted: number): number {
  const now = openFileLimit();
  if (now >= wanted) return now;
  const r = spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${wanted}:${wanted}`], { encoding: 'utf8' });
  const after = openFileLimit();
  if (after < wanted) {
    const why = r.error ? r.error.message : r.stderr.trim() || `prlimit exited ${r.status}`;
    throw new Error(
      `needs ${wanted} open files but the limit is ${after} and could not be raised (${why}); run as root or raise it first (ulimit -n ${wanted})`,
    );
  }
  return after;
}
