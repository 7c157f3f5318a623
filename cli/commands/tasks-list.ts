import { Command } from 'commander';
import type { Task } from '../../gen/baton/v1/task';
import { DEFAULT_ENVIRONMENT, TASK_NAME } from '../../lib/names';
import { CliError } from '../cli-error';
import { addConnectionOptions, Clients, type ConnectionOptions } from '../connection';
import { paramFlags, taskUsage } from '../param-options';
import { chooseColors } from '../summary-format';
import { getTask, listTasks } from '../task-catalog';
import { runReservedFlags } from './tasks-run';

/** Width used for columns when stdout is not a terminal. */
const DEFAULT_COLUMNS = 80;

interface ListOptions extends ConnectionOptions {
  environment: string;
  detail?: boolean;
  all?: boolean;
}

/** Names laid out in as many columns as fit `width`, each as wide as the longest name + 2 (mco's layout, sized to the terminal). */
export function formatColumns(names: string[], width: number): string[] {
  if (names.length === 0) return [];
  const cell = Math.max(...names.map((n) => n.length)) + 2;
  const perRow = Math.max(1, Math.floor((width - 2) / cell));
  const rows: string[] = [];
  for (let i = 0; i < names.length; i += perRow)
    rows.push(
      `  ${names
        .slice(i, i + perRow)
        .map((n) => n.padEnd(cell))
        .join('')}`.trimEnd(),
    );
  return rows;
}

/** `baton tasks list [--detail] [-E ENV]` (docs/choria-compat.md §5.1): one ListTasks request, descriptions included. */
export function tasksListCommand(done: (code: number) => void): Command {
  const command = new Command('list')
    .description('list the tasks of an environment (the default of `baton tasks`)')
    .option('-E, --environment <ENV>', 'environment to list', DEFAULT_ENVIRONMENT)
    .option('--detail', 'show each task with its description')
    .option('--all', 'include private tasks');
  return addConnectionOptions(command, 'print the tasks as a JSON array', ['metadata']).action(async (options: ListOptions) => {
    const clients = new Clients(options);
    try {
      const tasks = await listTasks(clients, options.environment, options.all === true);
      if (options.json) {
        const doc = tasks.map((t) => ({
          name: t.name,
          description: t.description,
          private: t.private,
          error: t.error ? `${t.error.kind}: ${t.error.msg}` : null,
        }));
        process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
        return done(0);
      }
      const c = chooseColors(process.stdout, !options.color);
      const lines = [`Known tasks in the ${options.environment} environment`, ''];
      if (options.detail) {
        const pad = Math.max(0, ...tasks.map((t) => t.name.length)) + 2;
        for (const t of tasks) lines.push(`  ${t.name.padEnd(pad)} ${t.error ? c.red(`cannot be loaded: ${t.error.msg}`) : t.description}`.trimEnd());
      } else {
        lines.push(
          ...formatColumns(
            tasks.map((t) => t.name),
            process.stdout.isTTY ? process.stdout.columns || DEFAULT_COLUMNS : DEFAULT_COLUMNS,
          ),
        );
      }
      if (tasks.length === 0) lines.push('  (none)');
      lines.push('', "Use 'baton tasks <TASK>' to see task help");
      if (!options.detail) lines.push('Pass option --detail to see task descriptions');
      process.stdout.write(`${lines.join('\n')}\n`);
      done(0);
    } finally {
      clients.close();
    }
  });
}

function defaultText(task: Task, name: string): string {
  const p = task.parameters.find((x) => x.name === name);
  return p?.defaultValue === undefined ? '' : ` default: ${JSON.stringify(p.defaultValue)}`;
}

/** The help text of one task (docs/choria-compat.md §5.2): description, parameters, files and a usage line. */
export function formatTaskHelp(task: Task, environment: string, bold: (s: string) => string): string[] {
  const lines = [`${bold(task.name)} - ${task.description || '(no description)'}`, ''];
  const flags = paramFlags(task.parameters, runReservedFlags());
  if (task.parameters.length === 0) {
    lines.push(task.parametersDeclared ? 'The task takes no parameters' : 'The task declares no parameters: pass any input with --input');
  } else {
    lines.push('Task Parameters:');
    for (const f of flags) {
      const p = f.parameter;
      const marks = `${p.required ? ' required' : ''}${defaultText(task, p.name)}${p.sensitive ? ' sensitive' : ''}${f.flag !== p.name ? ` (flag --${f.flag})` : ''}`;
      lines.push(`  ${p.name.padEnd(30)} ${p.description ? `${p.description} ` : ''}(${p.type})${marks}`);
    }
  }
  lines.push('', 'Task Files:');
  for (const f of task.files) lines.push(`  ${f.path.padEnd(30)} ${f.sizeBytes} bytes`);
  lines.push('', `Use 'baton tasks run ${taskUsage(task, environment, flags)} [filters]' to run this task`);
  if (task.supportsNoop) lines.push('The task supports --noop');
  return lines;
}

/** `baton tasks show <TASK> [-E ENV]`, also reached as `baton tasks <TASK>`. */
export function tasksShowCommand(done: (code: number) => void): Command {
  const command = new Command('show')
    .description('show a task: description, parameters, files and how to run it (also `baton tasks <TASK>`)')
    .argument('<task>', 'task name, e.g. demo::echo')
    .option('-E, --environment <ENV>', 'environment to take the task from', DEFAULT_ENVIRONMENT);
  return addConnectionOptions(command, 'print the task metadata as JSON', ['metadata']).action(async (name: string, options: ListOptions) => {
    if (!TASK_NAME.test(name)) throw new CliError(`'${name}' is not a task name; expected <module>::<task> or <module>`);
    const clients = new Clients(options);
    try {
      const task = await getTask(clients, options.environment, name);
      if (options.json) {
        process.stdout.write(`${JSON.stringify(JSON.parse(task.metadataJson || '{}'), null, 2)}\n`);
      } else {
        const c = chooseColors(process.stdout, !options.color);
        process.stdout.write(`${formatTaskHelp(task, options.environment, c.bold).join('\n')}\n`);
      }
      done(0);
    } finally {
      clients.close();
    }
  });
}
