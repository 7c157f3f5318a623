import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CliError } from './cli-error';

/**
 * The settings the CLI reads from flags, `BATON_*` variables and its config file, in that
 * precedence (docs/toolchain.md "CLI conventions").
 */
export const SETTING_KEYS = ['scheduler', 'metadata', 'results', 'tls-ca', 'tls-cert', 'tls-key'] as const;

/** One CLI setting name. */
export type SettingKey = (typeof SETTING_KEYS)[number];

/** A setting's value and where it came from, as `baton config show` prints it. */
export interface Setting {
  value: string | undefined;
  source: string;
}

/** The config file the CLI reads: `BATON_CONFIG`, else `$XDG_CONFIG_HOME/baton/config.yaml` (default `~/.config`). */
export function configFilePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.BATON_CONFIG) return env.BATON_CONFIG;
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'baton', 'config.yaml');
}

/** `tls-ca` → `BATON_TLS_CA`. */
export function settingEnvName(key: SettingKey): string {
  return `BATON_${key.toUpperCase().replace(/-/g, '_')}`;
}

let fileCache: { path: string; values: Record<string, string> } | undefined;

/** Reads the config file once per process; a missing file is no config, a bad one is one line. */
function readConfigFile(path: string, explicit: boolean): Record<string, string> {
  if (fileCache?.path === path) return fileCache.values;
  const values: Record<string, string> = {};
  if (existsSync(path)) {
    let doc: unknown;
    try {
      // Loaded only when a config file exists: yaml costs start-up time, and a command is typed
      // many times a day.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { parse } = require('yaml') as typeof import('yaml');
      doc = parse(readFileSync(path, 'utf8')) ?? {};
    } catch (err) {
      throw new CliError(`config file ${path}: ${(err as Error).message.split('\n')[0]}`);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
      throw new CliError(`config file ${path}: expected a mapping of keys (${SETTING_KEYS.join(', ')}) to values`);
    for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
      if (!(SETTING_KEYS as readonly string[]).includes(k))
        throw new CliError(`config file ${path}: unknown key '${k}'; expected one of ${SETTING_KEYS.join(', ')}`);
      if (typeof v !== 'string' || v === '') throw new CliError(`config file ${path}: '${k}' must be a non-empty string`);
      values[k] = v;
    }
  } else if (explicit) {
    throw new CliError(`config file ${path} (from BATON_CONFIG) does not exist`);
  }
  fileCache = { path, values };
  return values;
}

/**
 * The effective value of one setting: the flag, then `BATON_<KEY>`, then the config file
 * (unless `useFile` is false), then what `fallback` gives.
 */
export function resolveSetting(key: SettingKey, flag: string | undefined, fallback?: () => Setting | undefined, useFile = true): Setting {
  if (flag !== undefined && flag !== '') return { value: flag, source: `flag --${key}` };
  const envName = settingEnvName(key);
  const fromEnv = process.env[envName];
  if (fromEnv) return { value: fromEnv, source: `environment variable ${envName}` };
  const path = configFilePath();
  const fromFile = useFile ? readConfigFile(path, Boolean(process.env.BATON_CONFIG))[key] : undefined;
  if (fromFile !== undefined) return { value: fromFile, source: `config file ${path}` };
  return fallback?.() ?? { value: undefined, source: 'not set' };
}
