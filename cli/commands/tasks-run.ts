import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { RunState } from '../../gen/baton/v1/run';
import { RunTaskRequest } from '../../gen/baton/v1/scheduler_service';
import { Command, Option } from 'commander';
import type { Filter } from '../../gen/baton/v1/filter';
import { DEFAULT_ENVIRONMENT, TASK_NAME } from '../../lib/names';
import { parseJsonLexemes } from '../../lib/puppet-types';
import { CliError, commanderLine, EXIT } from '../cli-error';
import { addFilterOptions, filterFromOptions, type FilterOptions } from '../filter-options';
import { addConnectionOptions, Clients, type ConnectionOptions } from '../connection';
import { addParamOptions, inputFromFlags, paramFlags, taskUsage, type ParamFlag } from '../param-options';
import { rerunNodes, takeRerun } from '../rerun';
import { ProgressLine } from '../progress-line';
import { onInterrupt } from '../run-interrupt';
import { RunLocator } from '../run-locator';
import { RunNarrator, RunProgressView } from '../run-narrator';
import { startRun, type StartRunOutcome } from '../run-stream';
import { isFinalRunState } from '../../lib/run-states';
import { computeRunStatus } from '../../lib/run-status';
import type { GetRunStatusResponse } from '../../gen/baton/v1/results_service';
import { statusDocument } from '../status-document';
import { reportRun } from '../summary-format';
import { getTask } from '../task-catalog';

/** Seconds `baton tasks run` waits for the nodes by default (Choria's DDL timeout). */
export const DEFAULT_WAIT_S = 60;

/** Extra time the CLI gives the scheduler beyond the wait, for downloads and bookkeeping. */
const RUN_DEADLINE_MARGIN_S = 90;

/**
 * `baton tasks run` with a task's parameter flags (first in `--help`: they are what the
 * operator came for) and its own options. A task parameter named like one of its own options
 * becomes `--param-<name>`.
 */
function runCommand(flags: ParamFlag[] = []): Command {
  const command = new Command('run')
    .name('baton tasks run')
    .description('run a task on the nodes picked by the filters')
    .argument('<task>', 'task name, e.g. acme::restart');
  if (flags.length > 0) {
    command.optionsGroup('Task parameters:');
    addParamOptions(command, flags);
  }
  command
    .optionsGroup('Options:')
    .option('-E, --environment <ENV>', 'environment to take the task from', DEFAULT_ENVIRONMENT)
    .option('--input <JSON|@FILE>', 'task input as a JSON object, or @file.json / @file.yaml; parameter flags override it')
    .option('--background', 'return right after the run is dispatched')
    .addOption(new Option('--wait <SECONDS>', 'seconds to wait for the nodes').default(DEFAULT_WAIT_S).argParser(positiveInt('--wait')))
    .addOption(new Option('--timeout <SECONDS>', 'stop the task on the nodes after this many seconds').argParser(positiveInt('--timeout')))
    .option('--noop', 'run in no-op mode (tasks that support it)')
    .option('--run-as <USER>', 'run the task as this user on the nodes')
    .option('--summary', 'print only the summary, not the failed nodes (a progress bar on a terminal)')
    .addOption(new Option('--batch <N|N%>', 'run on N nodes (or N% of them) at a time').argParser(parseBatch))
    .addOption(new Option('--batch-sleep <SECONDS>', 'seconds between batches (default 1)').argParser(wholeNumber('--batch-sleep')))
    .option(
      '--rerun <ID>',
      "run on the nodes of run ID: '--rerun ID failure' (the default: nodes that failed or never answered), '--rerun ID success' or '--rerun ID all'",
    )
    .option('--cancel-on-interrupt', 'Ctrl-C cancels the run (without it the run goes on, and a second Ctrl-C within 3 s cancels it)');
  return addConnectionOptions(addFilterOptions(command), 'print the result document as JSON (with --background: the task id and nodes)', undefined, true);
}

/**
 * The long names of `baton tasks run`'s own options. A task parameter named like one of them
 * gets the flag `--param-<name>` (docs/choria-compat.md §4.2: Choria's clashes made it rename
 * `--environment` to `-E`); `--input` can set any parameter too.
 */
export function runReservedFlags(): Set<string> {
  return new Set(
    runCommand()
      .options.map((o) => o.long?.replace(/^--(no-)?/, '') ?? '')
      .concat(['help', 'color']),
  );
}

/** `--batch 5` or `--batch 20%`. */
function parseBatch(v: string): { size: number; percent: number } {
  const m = /^(\d+)(%?)$/.exec(v);
  const n = m ? Number(m[1]) : 0;
  if (!m || n < 1 || (m[2] && n > 100)) throw new CliError(`--batch expects a number of nodes >= 1 or a percentage from 1% to 100%, got '${v}'`);
  return m[2] ? { size: 0, percent: n } : { size: n, percent: 0 };
}

function wholeNumber(flag: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new CliError(`${flag} expects a whole number of seconds >= 0, got '${v}'`);
    return Number(v);
  };
}

function positiveInt(flag: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new CliError(`${flag} expects a whole number of seconds >= 1, got '${v}'`);
    return Number(v);
  };
}

/**
 * Reads `--input` (a JSON object, or @file.json / @file.yaml) as JSON text per parameter name.
 * JSON keeps each value's text as written (so `1.0` stays a Float); YAML values are rendered.
 */
function readInputOption(value: string | undefined): Map<string, string> {
  if (value === undefined) return new Map();
  let text = value;
  let yaml = false;
  if (value.startsWith('@')) {
    const file = value.slice(1);
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new CliError(`--input ${value}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    yaml = /\.ya?ml$/i.test(file);
  }
  if (yaml) {
    let doc: unknown;
    try {
      // Loaded only for a YAML file: yaml is a large part of start-up.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      doc = (require('yaml') as typeof import('yaml')).parse(text);
    } catch (err) {
      throw new CliError(`--input ${value}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new CliError('--input must be a mapping of parameter names to values');
    return new Map(Object.entries(doc as Record<string, unknown>).map(([k, v]) => [k, JSON.stringify(v)]));
  }
  let members;
  try {
    members = parseJsonLexemes(text).members;
  } catch (err) {
    throw new CliError(`--input${value.startsWith('@') ? ` ${value}` : ''} is not valid JSON: ${(err as Error).message}`);
  }
  if (members === null) throw new CliError('--input must be a JSON object of parameter names to values');
  return new Map(members.map((m) => [m.key, m.json]));
}

/** Renders parameter name → JSON text as one JSON object (later maps override earlier ones). */
function renderInput(...parts: Array<Map<string, string>>): string {
  const merged = new Map<string, string>();
  for (const part of parts) for (const [k, v] of part) merged.set(k, v);
  return `{${[...merged].map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
}

interface RunOptions extends ConnectionOptions, FilterOptions {
  environment: string;
  input?: string;
  background?: boolean;
  wait: number;
  timeout?: number;
  noop?: boolean;
  runAs?: string;
  summary?: boolean;
  batch?: { size: number; percent: number };
  batchSleep?: number;
  cancelOnInterrupt?: boolean;
  rerun?: string;
}

function parseStrict(command: Command, argv: string[]): { task: string; options: RunOptions } {
  command.exitOverride().configureOutput({ writeErr: () => undefined, writeOut: (s) => process.stdout.write(s) });
  try {
    command.parse(argv, { from: 'user' });
  } catch (err) {
    const e = err as { code?: string; message: string; exitCode?: number };
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help') throw new CliError('', EXIT.OK);
    throw new CliError(commanderLine(e.message), EXIT.USAGE);
  }
  return { task: command.args[0], options: command.opts<RunOptions>() };
}

/** `baton tasks run <task> ...`: fetches the task's metadata, builds its flags, runs it and reports. */
export async function tasksRun(argv: string[]): Promise<number> {
  // Without a task there are no task flags to show: the built-in options are the help.
  if (argv.every((a) => a.startsWith('-')) && (argv.includes('--help') || argv.includes('-h'))) {
    process.stdout.write(runCommand().helpInformation());
    process.stdout.write("\nEach task adds one flag per parameter: see 'baton tasks run <task> --help' or 'baton tasks <task>'.\n");
    return EXIT.OK;
  }
  const rerun = takeRerun(argv);
  argv = rerun.argv;
  // Phase 1: find the task, environment and addresses; the task's own flags are unknown yet.
  const probe = runCommand().helpOption(false).allowUnknownOption().allowExcessArguments();
  const first = parseStrict(probe, argv);
  if (!TASK_NAME.test(first.task)) throw new CliError(`'${first.task}' is not a task name; expected <module>::<task> or <module>`);
  const clients = new Clients(first.options);
  try {
    const help = argv.includes('--help') || argv.includes('-h');
    const json = first.options.json === true || help;
    const say = (line = '') => {
      if (!json) process.stdout.write(`${line}\n`);
    };
    say(`Retrieving task metadata for task ${first.task} from the metadata service`);
    const fetched = getTask(clients, first.options.environment, first.task);
    // The scheduler's connection is set up while the metadata service answers.
    if (!help) clients.connectEarly('scheduler');
    const task = await fetched;

    // Phase 2: parse again with one flag per task parameter, strictly.
    const flags = paramFlags(task.parameters, runReservedFlags());
    const command = runCommand(flags).usage(`${taskUsage(task, first.options.environment, flags)} [options] [filters]`);
    const { options } = parseStrict(command, argv);
    const inputJson = renderInput(readInputOption(options.input), inputFromFlags(task, flags, options as unknown as Record<string, unknown>));
    const filter = filterFromOptions(options);
    if (rerun.taskId !== undefined) await rerunNodes(clients, filter, rerun.taskId, rerun.mode);
    if (options.batchSleep !== undefined && !options.batch) throw new CliError('--batch-sleep needs --batch N or --batch N%');
    return await run(clients, task.name, task.files.length, options, inputJson, filter, say);
  } finally {
    clients.close();
  }
}

/**
 * The run's status for the summary. StartRun's answer holds the run and every node's result as
 * the results service had them when every node had finished: the summary is computed from it
 * (lib/run-status.ts, as the results service computes it), where asking the results service
 * again would only repeat them, one call later. It is read from the results service when the
 * stream broke (the run was followed through its event log) or when the wait ran out with nodes
 * still running (their results may have come since).
 */
async function finalStatus(clients: Clients, outcome: StartRunOutcome, taskId: string): Promise<GetRunStatusResponse> {
  if (!('lost' in outcome) && outcome.response.stillRunning === 0 && outcome.response.run) {
    const { run, results } = outcome.response;
    return { run, ...computeRunStatus(run, new Map(results.map((r) => [r.host, r]))) };
  }
  return clients.call('results', (c) => c.getRunStatus, { taskId });
}

async function run(
  clients: Clients,
  task: string,
  files: number,
  options: RunOptions,
  inputJson: string,
  filter: Filter,
  say: (line?: string) => void,
): Promise<number> {
  const background = options.background === true;
  const progress = ProgressLine.forCommand(options.json);
  const narrator = new RunNarrator(say, progress, task, files, options.wait);
  const view = new RunProgressView(narrator, progress, background);
  const locator = new RunLocator();
  const interrupt = onInterrupt(clients, locator, progress, options.cancelOnInterrupt === true, () => view.stop());
  const request = RunTaskRequest.fromPartial({
    task,
    environment: options.environment,
    inputJson,
    filter,
    waitS: options.wait,
    background,
    noop: options.noop === true,
    runAs: options.runAs ?? '',
    timeoutS: options.timeout ?? 0,
    batchSize: options.batch?.size ?? 0,
    batchPercent: options.batch?.percent ?? 0,
    batchSleepS: options.batchSleep ?? 0,
    // Lets a stream that broke before the run existed be called again without a second run.
    requestId: randomUUID(),
  });
  const started = startRun(
    clients,
    request,
    {
      onStarted: (s) => {
        locator.settle(s);
        view.total = s.nodes;
        narrator.attempting(s.nodes, s.taskId);
      },
      onProgress: (p) => view.show(p),
      onLost: (s, why) => {
        progress.clear();
        process.stderr.write(`The connection to the scheduler broke (${why}); task ${s.taskId} goes on: following it through the results service\n`);
      },
    },
    {
      deadlineMs: (options.wait + RUN_DEADLINE_MARGIN_S) * 1000,
      followMs: (options.wait + RUN_DEADLINE_MARGIN_S) * 1000,
      // In background the run is followed until its run command went out, as StartRun would have.
      until: (state) => (background ? state !== RunState.RUN_STATE_PENDING && state !== RunState.RUN_STATE_DOWNLOADING : isFinalRunState(state)),
    },
  );
  let outcome: StartRunOutcome;
  try {
    const first = await interrupt.race(started);
    if ('code' in first) {
      started.catch(() => undefined); // ended by the exit; the run goes on on the scheduler
      return first.code;
    }
    outcome = first.answer;
  } finally {
    interrupt.dispose();
    locator.stop();
    progress.clear();
  }
  let taskId: string;
  if ('lost' in outcome) {
    taskId = outcome.lost.taskId;
  } else {
    taskId = outcome.response.taskId;
    narrator.attempting(outcome.response.run?.nodes.length ?? 0, taskId);
  }
  narrator.downloading();
  narrator.running(background);
  if (background) {
    const nodes =
      'lost' in outcome ? ((await clients.call('results', (c) => c.getRunStatus, { taskId })).run?.nodes ?? []) : (outcome.response.run?.nodes ?? []);
    if (options.json) process.stdout.write(`${JSON.stringify({ taskid: taskId, nodes })}\n`);
    say(`Started task ${task} on ${nodes.length} nodes with task id ${taskId}`);
    say(`Follow it with 'baton tasks watch ${taskId}', or read its results with 'baton tasks status ${taskId}'`);
    return EXIT.OK;
  }
  say();
  const doc = statusDocument(await finalStatus(clients, outcome, taskId));
  // A run that ends before the live progress drew its first frame still shows where it ended.
  progress.bar(doc.stats.completed, view.total);
  progress.clear();
  return reportRun(doc, { ...options, summaryOnly: options.summary === true });
}
