import { RunTaskRequest } from '../../gen/baton/v1/scheduler_service';
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import type { Filter } from '../../gen/baton/v1/filter';
import { unary } from '../../lib/grpc-client';
import { DEFAULT_ENVIRONMENT, TASK_NAME } from '../../lib/names';
import { parseJsonLexemes } from '../../lib/puppet-types';
import { CliError, EXIT } from '../cli-error';
import { addFilterOptions, filterFromOptions, type FilterOptions } from '../filter-options';
import { addConnectionOptions, callerMetadata, Clients, type ConnectionOptions } from '../connection';
import { addParamOptions, inputFromFlags, paramFlags } from '../param-options';
import { statusDocument } from '../status-document';
import { reportRun } from '../summary-format';

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
    .option('--run-as <USER>', 'run the task as this user on the nodes');
  return addConnectionOptions(addFilterOptions(command), 'print the result document as JSON');
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
    const { task } = await unary(clients.metadata, clients.metadata.getTask, { environment: first.options.environment, task: first.task });
    if (!task) throw new CliError(`the metadata service returned no task for '${first.task}'`, EXIT.FAILED);

    // Phase 2: parse again with one flag per task parameter, strictly.
    const command = runCommand();
    const reserved = new Set(command.options.map((o) => o.attributeName().replace(/[A-Z]/g, (ch) => `-${ch.toLowerCase()}`)).concat(['help', 'no-color']));
    const flags = paramFlags(task.parameters, reserved);
    addParamOptions(command, flags);
    const { options } = parseStrict(command, argv);
    const inputJson = renderInput(readInputOption(options.input), inputFromFlags(task, flags, options as unknown as Record<string, unknown>));
    const filter = filterFromOptions(options);
    return await run(clients, task.name, options, inputJson, filter, say);
  } finally {
    clients.close();
  }
}

async function run(
  clients: Clients,
  task: string,
  options: RunOptions,
  inputJson: string,
  filter: Filter,
  say: (line?: string) => void,
): Promise<number> {
  say(options.background ? `Starting task ${task} in the background` : `Running task ${task} and waiting up to ${options.wait} seconds for it to complete`);
  say();
  const response = await unary(
    clients.scheduler,
    clients.scheduler.runTask,
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
    }),
    { deadlineMs: (options.wait + RUN_DEADLINE_MARGIN_S) * 1000, metadata: callerMetadata() },
  );
  const taskId = response.taskId;
  if (options.background) {
    if (options.json) process.stdout.write(`${JSON.stringify({ taskid: taskId, nodes: response.run?.nodes ?? [] })}\n`);
    say(`Started task ${task} on ${response.run?.nodes.length ?? 0} nodes with task id ${taskId}`);
    say(`Request detailed status for the task using 'baton tasks status ${taskId}'`);
    return EXIT.OK;
  }
  const doc = statusDocument(await unary(clients.results, clients.results.getRunStatus, { taskId }));
  return reportRun(doc, options);
}
