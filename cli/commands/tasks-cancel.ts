import { Command } from 'commander';
import { isServiceError, readServiceError } from '../../lib/errors';
import { CliError, EXIT } from '../cli-error';
import { addConnectionOptions, callerMetadata, Clients, type ConnectionOptions } from '../connection';
import { checkTaskId } from '../task-id-argument';

/** A cancel refused because the run had ended, in words (the service names the state as an enum). */
function finishedRun(err: unknown, taskId: string): unknown {
  if (!isServiceError(err) || readServiceError(err).reason !== 'RUN_FINISHED') return err;
  const state = /RUN_STATE_([A-Z_]+)/.exec(err.details)?.[1]?.toLowerCase().replace(/_/g, ' ') ?? 'finished';
  return new CliError(
    `task ${taskId} has already ended (${state}): there is nothing left to cancel; 'baton tasks status ${taskId}' shows its results`,
    EXIT.FAILED,
  );
}

/** `baton tasks cancel <task id>`: stops a run's tasks on its nodes and its later batches. */
export function tasksCancelCommand(done: (code: number) => void): Command {
  const command = new Command('cancel')
    .description('cancel a run: stop its tasks on the nodes and any later batches')
    .argument('<task_id>', 'the task id printed by `baton tasks run`');
  return addConnectionOptions(command, 'print the nodes a cancel was sent to as JSON', ['scheduler']).action(
    async (taskId: string, options: ConnectionOptions) => {
      checkTaskId(taskId);
      const clients = new Clients(options);
      try {
        const res = await clients
          .call('scheduler', (c) => c.cancelRun, { taskId }, { metadata: callerMetadata() })
          .catch((err: unknown) => {
            throw finishedRun(err, taskId);
          });
        if (options.json) process.stdout.write(`${JSON.stringify({ taskid: taskId, nodes: res.nodes })}\n`);
        else {
          process.stdout.write(`Cancel sent for task ${taskId} to ${res.nodes.length} nodes${res.nodes.length ? `: ${res.nodes.join(', ')}` : ''}\n`);
          process.stdout.write(`Read what the nodes report with 'baton tasks status ${taskId}'\n`);
        }
        done(0);
      } finally {
        clients.close();
      }
    },
  );
}
