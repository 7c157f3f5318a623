// The words of the command line that name a command, apart from main.ts so that the installed
// command's loader (cli/start.ts) can name a command without starting the CLI.

/** Subcommands of `baton tasks`; any other word there is a task name (`baton tasks <TASK>`, as mco). */
const TASKS_SUBCOMMANDS = new Set(['list', 'show', 'run', 'status', 'watch', 'cancel', 'runs', 'help']);

/** Options of `baton tasks list/show` that take a value: the word after them is no subcommand or task name. */
const VALUE_OPTIONS = new Set(['-E', '--environment', '--scheduler', '--metadata', '--results', '--tls-ca', '--tls-cert', '--tls-key']);

/**
 * mco's dispatch (docs/choria-compat.md §5): `baton tasks` alone or with only options lists, and
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
