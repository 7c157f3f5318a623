import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { configFilePath, SETTING_KEYS, type Setting, type SettingKey } from '../cli-settings';
import { addressSetting, addConnectionOptions, tlsSetting, type ConnectionOptions } from '../connection';

/** The effective value and source of every CLI setting, given the flags. */
export function effectiveSettings(options: ConnectionOptions): Record<SettingKey, Setting> {
  const flags: Record<SettingKey, string | undefined> = {
    scheduler: options.scheduler,
    metadata: options.metadata,
    results: options.results,
    'tls-ca': options.tlsCa,
    'tls-cert': options.tlsCert,
    'tls-key': options.tlsKey,
  };
  const out = {} as Record<SettingKey, Setting>;
  for (const key of SETTING_KEYS) {
    out[key] = key === 'scheduler' || key === 'metadata' || key === 'results' ? addressSetting(key, flags) : tlsSetting(key, flags[key]);
  }
  return out;
}

/** `baton config show`: the effective service addresses and TLS files, and where each came from. */
export function configCommand(done: (code: number) => void): Command {
  const config = new Command('config').description('the CLI configuration: file, BATON_* variables and flags');
  const show = new Command('show').description('print the effective settings and where each came from');
  config.addCommand(
    addConnectionOptions(show, 'print the settings as JSON').action((options: ConnectionOptions) => {
      const settings = effectiveSettings(options);
      const file = configFilePath();
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ config_file: { path: file, exists: existsSync(file) }, settings }, null, 2)}\n`);
      } else {
        const lines = [`config file: ${file}${existsSync(file) ? '' : ' (not found)'}`, ''];
        for (const key of SETTING_KEYS) {
          const s = settings[key];
          lines.push(`  ${key.padEnd(10)} ${(s.value ?? '-').padEnd(24)} ${s.source}`);
        }
        lines.push('', 'Precedence: flags, then BATON_* environment variables, then the config file, then a running `baton dev`.');
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      done(0);
    }),
  );
  return config;
}
