import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { RunState } from '../../gen/baton/v1/run';
import { RunTaskRequest, type RunTaskResponse } from '../../gen/baton/v1/scheduler_service';
import { Command, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import type { Filter } from '../../gen/baton/v1/filter';
import { DEFAULT_ENVIRONMENT, TASK_NAME } from '../../lib/names';
import { parseJsonLexemes } from '../../lib/puppet-types';
import { CliError, EXIT } from '../cli-error';
import { addFilterOptions, filterFromOptions, type FilterOptions } from '../filter-options';
import { addConnectionOptions, callerMetadata, Clients, type ConnectionOptions } from '../connection';
import { addParamOptions, inputFromFlags, paramFlags } from '../param-options';
import { ProgressLine } from '../progress-line';
import { countNodes, RunFollower } from '../run-follower';
import { statusDocument } from '../status-document';
import { reportRun } from '../summary-format';
import { getTask } from '../task-catalog';

/** Seconds `baton tasks run` waits for the nodes by default (Choria's DDL timeout). */
export const DEFAULT_WAIT_S = 60;

/** Extra time the CLI gives the scheduler beyond the wait, for downloads and bookkeeping. */
const RUN_DEADLINE_MARGIN_S = 90;

/** The options `baton tasks run` itself defines (a task parameter with one of these names becomes `--param-<name>`). */
function runCommand(): Command {
  const command = new Command('run')
    .name('baton tasks run')
    .description('run a task on the nodes picked by the filters')
    .argument('<task>', 'task name, e.g. acme::restart')
    .option('-E, --environment <ENV>', 'environment to take the task from', DEFAULT_ENVIRONMENT)
    .option('--input <JSON|@FILE>', 'task input as a JSON object, or @file.json / @file.yaml; parameter flags override it')
    .option('--background', 'return right after the run is dispatched')
    .addOption(new Option('--wait <SECONDS>', 'seconds to wait for the nodes').default(DEFAULT_WAIT_S).argParser(positiveInt('--wait')))
    .addOption(new Option('--timeout <SECONDS>', 'stop the task on the nodes after this many seconds').argParser(positiveInt('--timeout')))
    .option('--noop', 'run in no-op mode (tasks that support it)')
    .option('--run-as <USER>', 'run the task as this user on the nodes')
    .option('--summary', 'print only the summary, not the failed nodes (a progress bar on a terminal)')
    .addOption(new Option('--batch <N|N%>', 'run on N nodes (or N% of them) at a time').argParser(parseBatch))
    .addOption(new Option('--batch-sleep <SECONDS>', 'seconds between batches (default 1)').argParser(wholeNumber('--batch-sleep')));
  return addConnectionOptions(addFilterOptions(command), 'print the result document as JSON (with --background: the task id and nodes)');
}

/**
 * The long names of `baton tasks run`'s own options. A task parameter named like one of them
 * gets the flag `--param-<name>` (choria-tasks.md §4.2: Choria's clashes made it rename
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
      doc = parseYaml(text);
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
}

function parseStrict(command: Command, argv: string[]): { task: string; options: RunOptions } {
  command.exitOverride().configureOutput({ writeErr: () => undefined, writeOut: (s) => process.stdout.write(s) });
  try {
    command.parse(argv, { from: 'user' });
  } catch (err) {
    const e = err as { code?: string; message: string; exitCode?: number };
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help') throw new CliError('', EXIT.OK);
    throw new CliError(e.message.replace(/^error: /, ''), EXIT.USAGE);
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
  // Phase 1: find the task, environment and addresses; the task's own flags are unknown yet.
  const probe = runCommand().helpOption(false).allowUnknownOption().allowExcessArguments();
  const first = parseStrict(probe, argv);
  if (!TASK_NAME.test(first.task)) throw new CliError(`'${first.task}' is not a task name; expected <module>::<task> or <module>`);
  const clients = new Clients(first.options);
  try {
    const json = first.options.json === true;
    const say = (line = '') => {
      if (!json) process.stdout.write(`${line}\n`);
    };
    say(`Retrieving task metadata for task ${first.task} from the metadata service`);
    const task = await getTask(clients, first.options.environment, first.task);

    // Phase 2: parse again with one flag per task parameter, strictly.
    const command = runCommand();
    const flags = paramFlags(task.parameters, runReservedFlags());
    addParamOptions(command, flags);
    const { options } = parseStrict(command, argv);
    const inputJson = renderInput(readInputOption(options.input), inputFromFlags(task, flags, options as unknown as Record<string, unknown>));
    const filter = filterFromOptions(options);
    if (options.batchSleep !== undefined && !options.batch) throw new CliError('--batch-sleep needs --batch N or --batch N%');
    return await run(clients, task.name, task.files.length, options, inputJson, filter, say);
  } finally {
    clients.close();
  }
}

/** Says mco's lines once each, in order, however they are reached (live or after the call). */
class RunNarrator {
  private said = new Set<string>();

  constructor(
    private readonly say: (line?: string) => void,
    private readonly progress: ProgressLine,
    private readonly task: string,
    private readonly files: number,
    private readonly waitS: number,
  ) {}

  private once(key: string, line: string): void {
    if (this.said.has(key)) return;
    this.said.add(key);
    this.progress.clear();
    this.say(line);
  }

  attempting(nodes: number): void {
    this.once('attempting', `Attempting to download and run task ${this.task} on ${nodes} nodes`);
    this.once('blank', '');
  }

  downloading(): void {
    this.once('downloading', `Downloading and verifying ${this.files} file(s) from the metadata service to all nodes`);
  }

  running(background: boolean): void {
    this.once('running', background ? `Starting task ${this.task} in the background` : `Running task ${this.task} and waiting up to ${this.waitS} seconds for it to complete`);
  }
}

/** Interval at which a terminal run looks for its new run record (to follow its events live). */
const FIND_RUN_INTERVAL_MS = 100;

/**
 * On a terminal, draws the run's progress live: finds the run by its request id among the
 * caller's newest runs (RunTask answers only at the end of the wait), then follows its event
 * log — the downloads as `i / N`, then the finished nodes as mco's bar.
 */
function followLive(clients: Clients, requestId: string, narrator: RunNarrator, progress: ProgressLine, options: RunOptions): { stop(): void } {
  let stopped = false;
  let follower: RunFollower | undefined;
  const find = async (): Promise<void> => {
    while (!stopped) {
      const page = await clients.call('results', (c) => c.listRuns, { pageSize: 20, pageToken: '', caller: clients.callerId() });
      const run = page.runs.find((r) => r.requestId === requestId);
      if (run) {
        narrator.attempting(run.nodes.length);
        const total = run.nodes.length;
        const draw = (state: RunState, view: Parameters<typeof countNodes>[0]): void => {
          const { downloaded, finished } = countNodes(view);
          if (state === RunState.RUN_STATE_DOWNLOADING) progress.update(`${downloaded} / ${total}`);
          else if (state === RunState.RUN_STATE_RUNNING) progress.bar(finished, total);
        };
        follower = new RunFollower(clients, run.taskId, run.nodes, {
          onRunState: (state, view) => {
            if (state === RunState.RUN_STATE_DOWNLOADING) narrator.downloading();
            if (state === RunState.RUN_STATE_RUNNING) {
              narrator.downloading();
              narrator.running(options.background === true);
            }
            draw(state, view);
          },
          onNode: (_, view) => draw(view.state, view),
        });
        await follower.done;
        return;
      }
      await new Promise((r) => setTimeout(r, FIND_RUN_INTERVAL_MS));
    }
  };
  // Progress is a nicety: a failure to draw it never fails the run.
  find().catch(() => undefined);
  return {
    stop() {
      stopped = true;
      follower?.stop();
      progress.clear();
    },
  };
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
  const progress = ProgressLine.forCommand(options.json);
  const narrator = new RunNarrator(say, progress, task, files, options.wait);
  const requestId = randomUUID();
  const live = progress.enabled ? followLive(clients, requestId, narrator, progress, options) : undefined;
  let response: RunTaskResponse;
  try {
    response = await clients.call(
      'scheduler',
      (c) => c.runTask,
      RunTaskRequest.fromPartial({
        task,
        environment: options.environment,
        inputJson,
        filter,
        waitS: options.wait,
        background: options.background === true,
        noop: options.noop === true,
        runAs: options.runAs ?? '',
        timeoutS: options.timeout ?? 0,
        batchSize: options.batch?.size ?? 0,
        batchPercent: options.batch?.percent ?? 0,
        batchSleepS: options.batchSleep ?? 0,
        requestId,
      }),
      { deadlineMs: (options.wait + RUN_DEADLINE_MARGIN_S) * 1000, metadata: callerMetadata() },
    );
  } finally {
    live?.stop();
  }
  const taskId = response.taskId;
  const nodes = response.run?.nodes ?? [];
  narrator.attempting(nodes.length);
  narrator.downloading();
  narrator.running(options.background === true);
  if (options.background) {
    if (options.json) process.stdout.write(`${JSON.stringify({ taskid: taskId, nodes })}\n`);
    say(`Started task ${task} on ${nodes.length} nodes with task id ${taskId}`);
    say(`Follow it with 'baton tasks watch ${taskId}', or read its results with 'baton tasks status ${taskId}'`);
    return EXIT.OK;
  }
  say();
  const doc = statusDocument(await clients.call('results', (c) => c.getRunStatus, { taskId }));
  return reportRun(doc, { ...options, summaryOnly: options.summary === true });
}
