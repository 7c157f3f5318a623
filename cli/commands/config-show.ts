import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { configFilePath, SETTING_KEYS } from '../cli-settings';
import { addConnectionOptions, connectionSettings, type ConnectionOptions } from '../connection';

/** `baton config show`: the effective service addresses and TLS files, and where each came from. */
export function configCommand(done: (code: number) => void): Command {
  const config = new Command('config').description('the CLI configuration: file, BATON_* variables and flags');
  const show = new Command('show').description('print the effective settings and where each came from');
  config.addCommand(
    addConnectionOptions(show, 'print the settings as JSON').action((options: ConnectionOptions) => {
      const { settings, stack, otherStacks } = connectionSettings(options);
      const file = configFilePath();
      const devStack = stack ? { pid: stack.pid, started: stack.started, record: stack.file, other_stacks: otherStacks } : null;
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ config_file: { path: file, exists: existsSync(file) }, dev_stack: devStack, settings }, null, 2)}\n`);
      } else {
        const lines = [`config file: ${file}${existsSync(file) ? '' : ' (not found)'}`];
        if (stack) {
          lines.push(`baton dev:   stack of pid ${stack.pid}, started ${stack.started} (${stack.file})`);
          if (otherStacks > 0)
            lines.push(`             the newest of ${otherStacks + 1} running stacks; pin another with the 'export BATON_...' lines its 'baton dev' printed`);
        }
        lines.push('');
        for (const key of SETTING_KEYS) {
          const s = settings[key];
          lines.push(`  ${key.padEnd(10)} ${(s.value ?? '-').padEnd(24)} ${s.source}`);
        }
        lines.push(
          '',
          'Precedence: flags, then BATON_* environment variables, then the config file; a running `baton dev` (addresses and TLS together) only when no address is set.',
        );
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      done(0);
    }),
  );
  return config;
}
