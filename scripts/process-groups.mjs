// Ending everything a child process started, for the runners of tests and benchmarks: the
// child runs in a process group of its own and carries a marker in its environment, which its
// descendants inherit; processes that leave the group on purpose (task wrappers and
// supervisors that agents start in sessions of their own, servers started detached) are found
// by the marker in /proc (Linux).
import { readdirSync, readFileSync } from 'node:fs';

/** The environment variable holding the marker. */
export const MARKER_NAME = 'BATON_TEST_RUN';
/** Grace between SIGTERM and SIGKILL of a process group. */
export const STOP_GRACE_MS = 5_000;

/** Sends `signal` to a process group; false when the group is gone. */
export function signalGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Pids of processes (not this one) whose environment carries `marker`. */
function markedProcesses(marker) {
  let entries;
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const needle = `${MARKER_NAME}=${marker}\0`;
  const found = [];
  for (const name of entries) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`, 'latin1').includes(needle)) found.push(Number(name));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

function commandOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').join(' ').trim().slice(0, 120);
  } catch {
    return '?';
  }
}

/**
 * Ends everything a child started: its process group (SIGTERM, SIGKILL after the grace), then
 * any process left with its marker, each named on stderr as left running by `what`.
 */
export async function reap(pgid, marker, what) {
  if (signalGroup(pgid, 'SIGTERM')) {
    const until = Date.now() + STOP_GRACE_MS;
    while (Date.now() < until && signalGroup(pgid, 0)) await new Promise((r) => setTimeout(r, 100));
    signalGroup(pgid, 'SIGKILL');
  }
  for (const pid of markedProcesses(marker)) {
    console.error(`${what}: ending ${pid} (${commandOf(pid)}), left running`);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
}
