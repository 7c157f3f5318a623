import { isAbsolute, join, resolve } from 'node:path';
import type { FileDigests } from './file-digests';

/**
 * The modulepath of one environment, as Puppet computes it (directory environments): the
 * `modulepath` setting of `<env>/environment.conf` when there is one, else
 * `modules:$basemodulepath`. Entries are separated by `:`; relative ones are relative to the
 * environment's directory; `$basemodulepath` expands to the configured basemodulepath
 * directories and `$environment` to the environment's name. Modules are looked up in order,
 * the first directory holding a module of a name wins (Puppet `Environment#modules`).
 */

/** The modulepath of an environment whose environment.conf does not set one (Puppet's default). */
export const DEFAULT_ENVIRONMENT_MODULEPATH = 'modules:$basemodulepath';

/** The `modulepath` setting of an environment.conf text (ini, keys outside any section or in [main]), or undefined. */
export function modulepathSetting(text: string): string | undefined {
  let section = '';
  let value: string | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[([^\]]*)\]$/.exec(line);
    if (header) {
      section = header[1].trim();
      continue;
    }
    const setting = /^modulepath\s*=\s*(.*)$/.exec(line);
    if (setting && (section === '' || section === 'main')) value = setting[1].trim();
  }
  return value;
}

/** Expands a modulepath setting to absolute directories; unknown `$variables` are returned as problems. */
export function expandModulepath(setting: string, envName: string, envDir: string, basemodulepath: readonly string[]): { dirs: string[]; problems: string[] } {
  const dirs: string[] = [];
  const problems: string[] = [];
  for (const entry of setting
    .split(':')
    .map((e) => e.trim())
    .filter((e) => e !== '')) {
    if (entry === '$basemodulepath') {
      dirs.push(...basemodulepath);
      continue;
    }
    const expanded = entry.replace(/\$\{?environment\}?/g, envName);
    const unknown = /\$\{?\w+\}?/.exec(expanded);
    if (unknown) {
      problems.push(
        `environment.conf: modulepath entry '${entry}' uses ${unknown[0]}, which Baton does not know; expected only $basemodulepath and $environment`,
      );
      continue;
    }
    dirs.push(isAbsolute(expanded) ? expanded : resolve(envDir, expanded));
  }
  return { dirs: [...new Set(dirs)], problems };
}

/** The modulepath directories of the environment in `envDir`, reading its environment.conf through `digests` (so a rescan only stats it). */
export async function environmentModulepath(
  envName: string,
  envDir: string,
  basemodulepath: readonly string[],
  digests: FileDigests,
): Promise<{ dirs: string[]; problems: string[] }> {
  const text = await digests.text(join(envDir, 'environment.conf')).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
    throw err;
  });
  const setting = (text === undefined ? undefined : modulepathSetting(text)) ?? DEFAULT_ENVIRONMENT_MODULEPATH;
  return expandModulepath(setting, envName, envDir, basemodulepath);
}
