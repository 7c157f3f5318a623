// Tracing first: its instrumentation must patch @grpc/grpc-js before a command loads it (lib/tracing.ts).
import { inSpan, startTracing, stopTracing } from '../lib/tracing';
startTracing('cli');
import { Command } from 'commander';
import { CliError, describeError, EXIT } from './cli-error';

// Services are mostly addressed by IP (127.0.0.1:port from `baton dev`), grpc-js passes the host
// as the TLS server name, and Node then prints a two-line DeprecationWarning (DEP0123) on every
// TLS run: errors were no longer one line on stderr (found by test/e2e/bad-input.test.ts).
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  if (rest.some((r) => r === 'DEP0123' || (typeof r === 'object' && r !== null && (r as { code?: unknown }).code === 'DEP0123'))) return;
  (emitWarning as (w: string | Error, ...a: unknown[]) => void)(warning, ...rest);
});

/** Version of the `baton` CLI. */
export const VERSION = '0.1.0';

/** Subcommands of `baton tasks`; any other word there is a task name (`baton tasks <TASK>`, as mco). */
const TASKS_SUBCOMMANDS = new Set(['list', 'show', 'run', 'status', 'watch', 'cancel', 'runs', 'help']);

/**
 * mco's dispatch (choria-tasks.md §5): `baton tasks` alone or with only options lists, and
 * `baton tasks <TASK>` shows that task.
 */
export function rewriteTasksArgv(argv: string[]): string[] {
  if (argv[0] !== 'tasks') return argv;
  const next = argv[1];
  if (next === undefined) return ['tasks', 'list'];
  if (next === '-h' || next === '--help') return argv;
  if (next.startsWith('-')) return ['tasks', 'list', ...argv.slice(1)];
  if (!TASKS_SUBCOMMANDS.has(next)) return ['tasks', 'show', ...argv.slice(1)];
  return argv;
}

/** Commander's own errors are usage errors, printed as one line by runCli. */
function quiet(command: Command): Command {
  return command.exitOverride().configureOutput({ writeErr: () => undefined });
}

/** Runs the CLI with `argv` (without node and script) and resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  // Each command's module is loaded only when it runs: start-up time counts (issue 7 point 8).
  /* eslint-disable @typescript-eslint/no-require-imports */
  // `tasks run` builds its flags from the task's metadata, so it parses its own arguments.
  if (argv[0] === 'tasks' && argv[1] === 'run') return (require('./commands/tasks-run') as typeof import('./commands/tasks-run')).tasksRun(argv.slice(2));
  if (argv[0] === '__complete') return (require('./commands/completion') as typeof import('./commands/completion')).completeCommand(argv.slice(1));
  argv = rewriteTasksArgv(argv);

  let exitCode: number = EXIT.OK;
  const done = (code: number) => {
    exitCode = code;
  };
  const program = quiet(new Command('baton').description('Baton: run Puppet-style tasks on fleets of nodes').version(VERSION));
  const tasks = quiet(new Command('tasks').description('list, inspect, run tasks and read their results'));
  const word = (i: number) => argv[i];
  const lazy = <M>(path: string): M => require(path) as M;
  // Only the command being run is built with its module; the others are placeholders for --help.
  const sub = (name: string, description: string, make: () => Command): Command => {
    if (word(1) === name || word(1) === undefined || word(1)?.startsWith('-')) return quiet(make());
    return new Command(name).description(description);
  };
  if (word(0) === 'tasks') {
    tasks.addCommand(sub('list', 'list the tasks of an environment', () => lazy<typeof import('./commands/tasks-list')>('./commands/tasks-list').tasksListCommand(done)));
    tasks.addCommand(sub('show', 'show a task (also baton tasks <TASK>)', () => lazy<typeof import('./commands/tasks-list')>('./commands/tasks-list').tasksShowCommand(done)));
    tasks.addCommand(new Command('run').description('run a task: baton tasks run <task> [--<param> VALUE] [-I node] (see baton tasks run <task> --help)'));
    tasks.addCommand(sub('status', "show a run's results by task id", () => lazy<typeof import('./commands/tasks-status')>('./commands/tasks-status').tasksStatusCommand(done)));
    tasks.addCommand(sub('watch', 'follow a run live until it ends', () => lazy<typeof import('./commands/tasks-watch')>('./commands/tasks-watch').tasksWatchCommand(done)));
    tasks.addCommand(sub('cancel', 'cancel a run', () => lazy<typeof import('./commands/tasks-cancel')>('./commands/tasks-cancel').tasksCancelCommand(done)));
    tasks.addCommand(sub('runs', 'list recent runs', () => lazy<typeof import('./commands/tasks-runs')>('./commands/tasks-runs').tasksRunsCommand(done)));
  } else {
    tasks.description('list, inspect, run tasks and read their results: list, show, run, status, watch, cancel, runs');
  }
  program.addCommand(tasks);
  const top = (name: string, description: string, make: () => Command): Command => (word(0) === name ? quiet(make()) : new Command(name).description(description));
  program.addCommand(top('discover', 'list the nodes the filters select, like mco find', () => lazy<typeof import('./commands/discover')>('./commands/discover').discoverCommand(done)));
  program.addCommand(top('dev', 'run a local stack: redis-server, the services and agents', () => lazy<typeof import('./commands/dev')>('./commands/dev').devCommand(done)));
  program.addCommand(top('pki', 'create a CA and issue certificates for services, agents and operators', () => lazy<typeof import('./commands/pki')>('./commands/pki').pkiCommand(done)));
  program.addCommand(top('config', 'the CLI configuration', () => lazy<typeof import('./commands/config-show')>('./commands/config-show').configCommand(done)));
  program.addCommand(top('completion', 'print a shell completion script (bash or zsh)', () => lazy<typeof import('./commands/completion')>('./commands/completion').completionCommand(done)));
  /* eslint-enable @typescript-eslint/no-require-imports */
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
  const argv = process.argv.slice(2);
  // The root span of what the operator asked for (`baton tasks run`): RunTask and everything
  // after it, on every service and agent, joins its trace. A no-op when tracing is off.
  const command = ['baton', ...argv.filter((a) => !a.startsWith('-')).slice(0, 2)].join(' ');
  void inSpan(command, { 'baton.cli.command': command }, () => main(argv)).then(
    async (code) => {
      await stopTracing();
      process.exit(code);
    },
    async (err: unknown) => {
      await stopTracing();
      const { line, exitCode } = describeError(err);
      if (line) process.stderr.write(`baton: ${line}\n`);
      process.exit(exitCode);
    },
  );
}

if (require.main === module) runCli();
