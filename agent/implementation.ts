import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { InputMethod, type Implementation } from '../gen/baton/v1/task';

/**
 * Which implementation of a task this node runs (docs/task-format.md §5.1): the first, in metadata
 * order, whose `requirements` are all among the agent's features. The agent decides, not the
 * scheduler, because only the node knows whether PowerShell or the Puppet agent is installed.
 */

/** Where the Puppet agent's `puppet` lives when it is installed (the `puppet-agent` feature). */
export const PUPPET_AGENT_BINARY = '/opt/puppetlabs/bin/puppet';

/** True when `path` exists and is executable. */
function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** True when `name` is an executable in one of PATH's directories. */
function onPath(name: string, pathEnv: string): boolean {
  return pathEnv.split(delimiter).some((dir) => dir !== '' && executable(join(dir, name)));
}

/**
 * The features of this node, Bolt's names: `shell` always (the agent runs on POSIX systems),
 * `powershell` when `pwsh` or `powershell` is on PATH, `puppet-agent` when the Puppet agent is
 * installed. Read once at start-up.
 */
export function agentFeatures(pathEnv = process.env.PATH ?? '', puppetBinary = PUPPET_AGENT_BINARY): string[] {
  const features = ['shell'];
  if (onPath('pwsh', pathEnv) || onPath('powershell', pathEnv)) features.push('powershell');
  if (executable(puppetBinary)) features.push('puppet-agent');
  return features;
}

/** What the run uses: the executable's module-relative path and its input method. */
export interface ChosenImplementation {
  path: string;
  inputMethod: InputMethod;
}

/** No implementation of the task fits this node's features. */
export class NoImplementationError extends Error {
  constructor(task: string, implementations: Implementation[], features: string[]) {
    const offered = implementations.map((i) => `${i.path} requires [${i.requirements.join(', ')}]`).join('; ');
    super(`no implementation of ${task} can run on this node (features: ${features.join(', ')}); ${offered}`);
    this.name = 'NoImplementationError';
  }
}

/**
 * The implementation to run. `implementations` empty: the command's executable with its input
 * method (single-file tasks, or a scheduler that sends no list). Otherwise the first whose
 * requirements are all features, with its own input method, else `taskInputMethod`.
 * Throws NoImplementationError when none fits.
 */
export function chooseImplementation(
  task: string,
  implementations: Implementation[],
  fallback: ChosenImplementation,
  features: readonly string[],
): ChosenImplementation {
  if (implementations.length === 0) return fallback;
  const impl = implementations.find((i) => i.requirements.every((r) => features.includes(r)));
  if (!impl) throw new NoImplementationError(task, implementations, [...features]);
  return { path: impl.path, inputMethod: impl.inputMethod !== InputMethod.INPUT_METHOD_UNSPECIFIED ? impl.inputMethod : fallback.inputMethod };
}
