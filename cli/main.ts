// NODE_EXTRA_CA_CERTS back where the processes the CLI starts read it (bin/baton.sh).
import { takeExtraCaCerts } from '../lib/extra-ca-certs';
takeExtraCaCerts();
// Tracing first: its instrumentation must patch @grpc/grpc-js before a command loads it
// (lib/tracing.ts). Without OTEL_* settings lib/tracing is not even loaded: start-up counts.
import { tracingConfigured } from '../lib/tracing-config';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tracing = tracingConfigured() ? (require('../lib/tracing') as typeof import('../lib/tracing')) : undefined;
tracing?.startTracing('cli');
import { Command } from 'commander';
import { CliError, commanderLine, EXIT } from './cli-error';
import { exitWhenDrained, quietOnClosedReader } from './output';
import { silenceServernameIpWarning } from '../lib/node-warnings';
import { commandSpanName, rewriteTasksArgv } from './command-words';
import { shortCutIsIPv6 } from './ipv6-check';

// Services are mostly addressed by IP (127.0.0.1:port from `baton dev`): without this, Node's
// DEP0123 warning would make an error more than one line on stderr (test/e2e/bad-input.test.ts).
silenceServernameIpWarning();
shortCutIsIPv6();

/** Version of the `baton` CLI. */
export const VERSION = '0.1.0';

/** Commander's own errors are usage errors, printed as one line by runCli. */
function quiet(command: Command): Command {
  return command.exitOverride().configureOutput({ writeErr: () => undefined });
}

/** Runs the CLI with `argv` (without node and script) and resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  // Each command's module is loaded only when it runs: start-up time counts for a command typed
  // many times a day.
  /* eslint-disable @typescript-eslint/no-require-imports */
  if (argv[0] === '__complete') return (require('./commands/completion') as typeof import('./commands/completion')).completeCommand(argv.slice(1));
  argv = rewriteTasksArgv(argv);
  // `tasks run` builds its flags from the task's metadata, so it parses its own arguments.
  if (argv[0] === 'tasks' && argv[1] === 'run') return (require('./commands/tasks-run') as typeof import('./commands/tasks-run')).tasksRun(argv.slice(2));

  let exitCode: number = EXIT.OK;
  const done = (code: number) => {
    exitCode = code;
  };
  const program = quiet(new Command('baton').description('Baton: run Puppet-style tasks on fleets of nodes').version(VERSION));
  const tasks = quiet(new Command('tasks').description('list, inspect, run tasks and read their results'));
  const word = (i: number) => argv[i];
  // Only the command being run is built with its module; the others are placeholders for --help.
  const sub = (name: string, description: string, make: () => Command): Command => {
    if (word(1) === name || word(1) === undefined || word(1)?.startsWith('-')) return quiet(make());
    return new Command(name).description(description);
  };
  if (word(0) === 'tasks') {
    tasks.addCommand(
      sub('list', 'list the tasks of an environment', () =>
        (require('./commands/tasks-list') as typeof import('./commands/tasks-list')).tasksListCommand(done),
      ),
    );
    tasks.addCommand(
      sub('show', 'show a task (also baton tasks <TASK>)', () =>
        (require('./commands/tasks-list') as typeof import('./commands/tasks-list')).tasksShowCommand(done),
      ),
    );
    tasks.addCommand(new Command('run').description('run a task: baton tasks run <task> [--<param> VALUE] [-I node] (see baton tasks run <task> --help)'));
    tasks.addCommand(
      sub('status', "show a run's results by task id", () =>
        (require('./commands/tasks-status') as typeof import('./commands/tasks-status')).tasksStatusCommand(done),
      ),
    );
    tasks.addCommand(
      sub('watch', 'follow a run live until it ends', () =>
        (require('./commands/tasks-watch') as typeof import('./commands/tasks-watch')).tasksWatchCommand(done),
      ),
    );
    tasks.addCommand(
      sub('cancel', 'cancel a run', () => (require('./commands/tasks-cancel') as typeof import('./commands/tasks-cancel')).tasksCancelCommand(done)),
    );
    tasks.addCommand(
      sub('runs', 'list recent runs', () => (require('./commands/tasks-runs') as typeof import('./commands/tasks-runs')).tasksRunsCommand(done)),
    );
  } else {
    tasks.description('list, inspect, run tasks and read their results: list, show, run, status, watch, cancel, runs');
  }
  program.addCommand(tasks);
  const top = (name: string, description: string, make: () => Command): Command =>
    word(0) === name ? quiet(make()) : new Command(name).description(description);
  program.addCommand(
    top('discover', 'list the nodes the filters select, like mco find', () =>
      (require('./commands/discover') as typeof import('./commands/discover')).discoverCommand(done),
    ),
  );
  program.addCommand(
    top('dev', 'run a local stack: redis-server, the services and agents', () =>
      (require('./commands/dev') as typeof import('./commands/dev')).devCommand(done),
    ),
  );
  program.addCommand(
    top('pki', 'create a CA and issue certificates for services, agents and operators', () =>
      (require('./commands/pki') as typeof import('./commands/pki')).pkiCommand(done),
    ),
  );
  program.addCommand(
    top('config', 'the CLI configuration', () => (require('./commands/config-show') as typeof import('./commands/config-show')).configCommand(done)),
  );
  program.addCommand(
    top('completion', 'print a shell completion script (bash or zsh)', () =>
      (require('./commands/completion') as typeof import('./commands/completion')).completionCommand(done),
    ),
  );
  /* eslint-enable @typescript-eslint/no-require-imports */
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message: string };
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT.OK;
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) throw new CliError(commanderLine(e.message), EXIT.USAGE);
    throw err;
  }
  return exitCode;
}

/** Runs the CLI on this process's arguments and exits with its code; errors become one line. */
export function runCli(): void {
  quietOnClosedReader();
  const argv = process.argv.slice(2);
  // The root span of what the operator asked for (`baton tasks run`): RunTask and everything
  // after it, on every service and agent, joins its trace. A no-op when tracing is off.
  const command = commandSpanName(argv);
  const traced = tracing ? tracing.inSpan(command, { 'baton.cli.command': command }, () => main(argv)) : main(argv);
  void traced.then(
    async (code) => {
      await tracing?.stopTracing();
      await exitWhenDrained(code);
    },
    async (err: unknown) => {
      await tracing?.stopTracing();
      // Loaded only on failure: it needs @grpc/grpc-js, which `baton --version` never loads.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { line, exitCode } = (require('./error-report') as typeof import('./error-report')).describeError(err);
      if (line) process.stderr.write(`baton: ${line}\n`);
      await exitWhenDrained(exitCode);
    },
  );
}

if (require.main === module) runCli();
