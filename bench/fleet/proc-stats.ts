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

/** Resident set size of a process now, in bytes (VmRSS of /proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** The pid of the direct child of `parentPid` whose command line contains `needle`; throws when there is none. */
export function childPid(needle: string, parentPid = process.pid): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (Number(statFields(Number(entry))[1]) !== parentPid) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').includes(needle)) return Number(entry);
    } catch {
      // the process ended while we looked
    }
  }
  throw new Error(`no child process of ${parentPid} runs ${needle}`);
}
