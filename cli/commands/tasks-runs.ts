import { Command, Option } from 'commander';
import type { Run } from '../../gen/baton/v1/run';
import { RunState } from '../../gen/baton/v1/run';
import { CliError } from '../cli-error';
import { addConnectionOptions, Clients, type ConnectionOptions } from '../connection';

/** Runs `baton tasks runs` lists when `--limit` is not given. */
export const DEFAULT_RUNS_LIMIT = 20;

interface RunsOptions extends ConnectionOptions {
  task?: string;
  caller?: string;
  limit: number;
}

function stateName(state: RunState): string {
  return ((RunState[state] as string | undefined) ?? 'RUN_STATE_UNSPECIFIED').replace(/^RUN_STATE_/, '').toLowerCase();
}

function runJson(r: Run) {
  return {
    taskid: r.taskId,
    task: r.task,
    environment: r.environment,
    caller: r.caller,
    state: stateName(r.state),
    nodes: r.nodes.length,
    created: r.createTime?.toISOString() ?? null,
    ended: r.endTime?.toISOString() ?? null,
    error: r.error,
  };
}

/** `baton tasks runs [--task T] [--caller C] [--limit N] [--json]`: recent runs, newest first (ResultsService.ListRuns). */
export function tasksRunsCommand(done: (code: number) => void): Command {
  const command = new Command('runs')
    .description('list recent runs, newest first')
    .option('--task <TASK>', 'only runs of this task')
    .option('--caller <CALLER>', 'only runs started by this caller, e.g. user=alice')
    .addOption(
      new Option('--limit <N>', 'most runs to list').default(DEFAULT_RUNS_LIMIT).argParser((v: string) => {
        if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 500) throw new CliError(`--limit expects a number from 1 to 500, got '${v}'`);
        return Number(v);
      }),
    );
  return addConnectionOptions(command, 'print the runs as a JSON array', ['results']).action(async (options: RunsOptions) => {
    const clients = new Clients(options);
    try {
      const runs: Run[] = [];
      let pageToken = '';
      // With both filters a page may be short while more follow (results_service.proto ListRunsRequest).
      do {
        const page = await clients.call('results', (c) => c.listRuns, {
          pageSize: options.limit - runs.length,
          pageToken,
          task: options.task,
          caller: options.caller,
        });
        runs.push(...page.runs);
        pageToken = page.nextPageToken;
      } while (pageToken && runs.length < options.limit);
      if (options.json) {
        process.stdout.write(`${JSON.stringify(runs.map(runJson), null, 2)}\n`);
        return done(0);
      }
      const rows = runs.map((r) => [
        r.taskId,
        r.task,
        r.caller,
        stateName(r.state),
        String(r.nodes.length),
        r.createTime ? r.createTime.toISOString().slice(0, 19).replace('T', ' ') : '',
      ]);
      const header = ['TASK ID', 'TASK', 'CALLER', 'STATE', 'NODES', 'CREATED (UTC)'];
      const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
      for (const row of [header, ...rows])
        process.stdout.write(
          `${row
            .map((cell, i) => cell.padEnd(widths[i]))
            .join('  ')
            .trimEnd()}\n`,
        );
      if (runs.length === 0) process.stderr.write('no runs matched\n');
      done(0);
    } finally {
      clients.close();
    }
  });
}
