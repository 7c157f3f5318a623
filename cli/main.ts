// Tracing first: its instrumentation must patch @grpc/grpc-js before a command loads it
// (lib/tracing.ts). Without OTEL_* settings lib/tracing is not even loaded: start-up counts.
import { tracingConfigured } from '../lib/tracing-config';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const tracing = tracingConfigured() ? (require('../lib/tracing') as typeof import('../lib/tracing')) : undefined;
tracing?.startTracing('cli');
import { Command } from 'commander';
import { CliError, commanderLine, describeError, EXIT } from './cli-error';
import { exitWhenDrained, quietOnClosedReader } from './output';
import { silenceServernameIpWarning } from '../lib/node-warnings';

// Services are mostly addressed by IP (127.0.0.1:port from `baton dev`): without this, Node's
// DEP0123 warning would make an error more than one line on stderr (test/e2e/bad-input.test.ts).
silenceServernameIpWarning();

/** Version of the `baton` CLI. */
export const VERSION = '0.1.0';

/** Subcommands of `baton tasks`; any other word there is a task name (`baton tasks <TASK>`, as mco). */
const TASKS_SUBCOMMANDS = new Set(['list', 'show', 'run', 'status', 'watch', 'cancel', 'runs', 'help']);

/** Options of `baton tasks list/show` that take a value: the word after them is no subcommand or task name. */
const VALUE_OPTIONS = new Set(['-E', '--environment', '--scheduler', '--metadata', '--results', '--tls-ca', '--tls-cert', '--tls-key']);

/**
 * mco's dispatch (choria-tasks.md §5): `baton tasks` alone or with only options lists, and
 * `baton tasks <TASK>` shows that task, wherever the options stand (`baton tasks -E staging
 * stg::where`). The subcommand is moved to the front so each parses its own options; `help`
 * as a word becomes `--help` (`baton help tasks run`, `baton tasks help status`).
 */
export function rewriteTasksArgv(argv: string[]): string[] {
  if (argv[0] === 'help') return argv.length === 1 ? ['--help'] : rewriteTasksArgv([...argv.slice(1), '--help']);
  if (argv[0] !== 'tasks') return argv;
  const rest = argv.slice(1);
  let at = -1;
  for (let i = 0; i < rest.length; i++) {
    if (VALUE_OPTIONS.has(rest[i])) i++;
    else if (!rest[i].startsWith('-')) {
      at = i;
      break;
    }
  }
  const help = rest.includes('-h') || rest.includes('--help');
  if (at < 0) return help ? argv : ['tasks', 'list', ...rest];
  const word = rest[at];
  const others = [...rest.slice(0, at), ...rest.slice(at + 1)];
  if (word === 'help') return others.some((w) => !w.startsWith('-')) ? rewriteTasksArgv(['tasks', ...others, '--help']) : ['tasks', '--help'];
  if (!TASKS_SUBCOMMANDS.has(word)) return ['tasks', 'show', word, ...others];
  return ['tasks', word, ...others];
}

/** Top-level commands and the subcommands a span name may show; anything else is an argument or a typo. */
const SPAN_COMMANDS = new Map<string, ReadonlySet<string>>([
  ['tasks', TASKS_SUBCOMMANDS],
  ['pki', new Set(['init', 'issue'])],
  ['discover', new Set()],
  ['dev', new Set()],
  ['config', new Set()],
  ['completion', new Set()],
]);

/**
 * The name of the CLI's root span: `baton`, then the command and subcommand when they are
 * Baton's own words (`baton tasks run`), never an argument (a task name, a task id, a typo), so
 * a tracing backend sees a handful of span names rather than one per invocation.
 */
export function commandSpanName(argv: string[]): string {
  const [first, second] = rewriteTasksArgv(argv);
  const subcommands = first === undefined ? undefined : SPAN_COMMANDS.get(first);
  if (!subcommands) return 'baton';
  return second !== undefined && subcommands.has(second) ? `baton ${first} ${second}` : `baton ${first}`;
}

/** Commander's own errors are usage errors, printed as one line by runCli. */
function quiet(command: Command): Command {
  return command.exitOverride().configureOutput({ writeErr: () => undefined });
}

/** Runs the CLI with `argv` (without node and script) and resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  // Each command's module is loaded only when it runs: start-up time counts (issue 7 point 8).
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
      const { line, exitCode } = describeError(err);
      if (line) process.stderr.write(`baton: ${line}\n`);
      await exitWhenDrained(exitCode);
    },
  );
}

if (require.main === module) runCli();
