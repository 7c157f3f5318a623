import { Command } from 'commander';
import { CliError, describeError, EXIT } from './cli-error';
import { devCommand } from './commands/dev';
import { discoverCommand } from './commands/discover';
import { tasksRun } from './commands/tasks-run';
import { tasksStatusCommand } from './commands/tasks-status';

/** Version of the `baton` CLI. */
export const VERSION = '0.1.0';

/** Runs the CLI with `argv` (without node and script) and resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  // `tasks run` builds its flags from the task's metadata, so it parses its own arguments.
  if (argv[0] === 'tasks' && argv[1] === 'run') return tasksRun(argv.slice(2));

  let exitCode: number = EXIT.OK;
  const done = (code: number) => {
    exitCode = code;
  };
  const program = new Command('baton')
    .description('Baton: run Puppet-style tasks on fleets of nodes')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeErr: () => undefined });
  const tasks = new Command('tasks').description('list, inspect, run tasks and read their results').exitOverride().configureOutput({ writeErr: () => undefined });
  tasks.addCommand(new Command('run').description('run a task: baton tasks run <task> [--<param> VALUE] [-I node] (see baton tasks run <task> --help)'));
  tasks.addCommand(tasksStatusCommand(done).exitOverride().configureOutput({ writeErr: () => undefined }));
  program.addCommand(tasks);
  program.addCommand(discoverCommand(done).exitOverride().configureOutput({ writeErr: () => undefined }));
  program.addCommand(devCommand(done).exitOverride().configureOutput({ writeErr: () => undefined }));
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message: string };
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT.OK;
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) throw new CliError(e.message.replace(/^error: /, ''), EXIT.USAGE);
    throw err;
  }
  return exitCode;
}

/** Runs the CLI on this process's arguments and exits with its code; errors become one line. */
export function runCli(): void {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      const { line, exitCode } = describeError(err);
      if (line) process.stderr.write(`baton: ${line}\n`);
      process.exit(exitCode);
    },
  );
}

if (require.main === module) runCli();
