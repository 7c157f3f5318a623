import { Command } from 'commander';
import { unary } from '../../lib/grpc-client';
import { isTaskId } from '../../lib/task-id';
import { CliError } from '../cli-error';
import { addConnectionOptions, Clients, type ConnectionOptions } from '../connection';
import { statusDocument } from '../status-document';
import { reportRun } from '../summary-format';

/** `baton tasks status <task id>`: every node's result of a run, read from the results service. */
export function tasksStatusCommand(done: (code: number) => void): Command {
  const command = new Command('status').description("show a run's results by task id").argument('<task_id>', 'the task id printed by `baton tasks run`');
  return addConnectionOptions(command, 'print the items/stats/summary document as JSON').action(async (taskId: string, options: ConnectionOptions) => {
    if (!isTaskId(taskId)) throw new CliError(`'${taskId}' is not a task id; expected 32 lowercase hex characters`);
    const clients = new Clients(options);
    try {
      const doc = statusDocument(await unary(clients.results, clients.results.getRunStatus, { taskId }));
      if (!options.json && !options.verbose) process.stdout.write(`Requesting task status for request ${taskId}, showing failures only pass --verbose for all output\n\n`);
      done(reportRun(doc, options));
    } finally {
      clients.close();
    }
  });
}
