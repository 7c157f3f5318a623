import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

/**
 * `run_as`: running a task as another user when the agent runs as root.
 *
 * Node's spawn can set uid and gid but drops every supplementary group (libuv calls
 * setgroups(0)), and the wrapper has to stay root to write the spool, so the privilege drop
 * happens between the wrapper and the task: `setpriv --reuid --regid --groups` (util-linux),
 * with the groups `id -G <user>` reports. The task gets a clean environment (PATH, HOME, USER,
 * LOGNAME, SHELL, LANG and its own variables), not the agent's.
 */

/** PATH given to a task run as another user. */
export const RUN_AS_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Where setpriv is looked for. */
export const SETPRIV_CANDIDATES = ['/usr/bin/setpriv', '/bin/setpriv', '/usr/sbin/setpriv'];

/** A user a task runs as. */
export interface RunAsUser {
  name: string;
  uid: number;
  gid: number;
  groups: number[];
  home: string;
  shell: string;
}

/** run_as cannot be honoured; the message says why in one line. */
export class RunAsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunAsError';
  }
}

/** A user name as POSIX and useradd allow it; anything else is refused before `id` sees it. */
const USER_NAME = /^[a-z_][a-z0-9_.-]{0,31}\$?$/i;

function idOf(args: string[]): string {
  return execFileSync('id', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** Looks the user up (`id`, `getent passwd`); throws RunAsError when it does not exist. */
export function lookupUser(name: string): RunAsUser {
  if (!USER_NAME.test(name)) throw new RunAsError(`run_as '${name}' is not a valid user name`);
  let uid: number, gid: number, groups: number[];
  try {
    uid = Number(idOf(['-u', '--', name]));
    gid = Number(idOf(['-g', '--', name]));
    groups = idOf(['-G', '--', name]).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    throw new RunAsError(`run_as user '${name}' does not exist on this node`);
  }
  let home = '/';
  let shell = '/bin/sh';
  try {
    const fields = execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .trim()
      .split(':');
    home = fields[5] || home;
    shell = fields[6] || shell;
  } catch {
    // No getent (or no entry there): the defaults do for a task's HOME and SHELL.
  }
  return { name, uid, gid, groups, home, shell };
}

/** The setpriv binary, or undefined when it is not installed. */
export function findSetpriv(candidates = SETPRIV_CANDIDATES): string | undefined {
  return firstExecutable(candidates);
}

/** The first of `candidates` that exists and is executable, or undefined. */
export function firstExecutable(candidates: readonly string[]): string | undefined {
  return candidates.find((p) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** The argv prefix that runs what follows as `user` with its groups. */
export function dropPrivilegesArgv(setpriv: string, user: RunAsUser): string[] {
  const groups = user.groups.length > 0 ? `--groups=${user.groups.join(',')}` : '--clear-groups';
  return [setpriv, `--reuid=${user.uid}`, `--regid=${user.gid}`, groups, '--'];
}

/** The clean base environment of a task run as `user`. */
export function runAsEnvironment(user: RunAsUser, lang = process.env.LANG): Record<string, string> {
  const env: Record<string, string> = { PATH: RUN_AS_PATH, HOME: user.home, USER: user.name, LOGNAME: user.name, SHELL: user.shell };
  if (lang) env.LANG = lang;
  return env;
}
