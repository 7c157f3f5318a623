import { Command } from 'commander';
import { RunState } from '../../gen/baton/v1/run';
import { addConnectionOptions, Clients, type ConnectionOptions } from '../connection';
import { ProgressLine } from '../progress-line';
import { countNodes, RunFollower } from '../run-follower';
import { nodeStateName, statusDocument } from '../status-document';
import { reportRun } from '../summary-format';
import { checkTaskId } from '../task-id-argument';

/**
 * `baton tasks watch <task id>`: follows a run (a background one too) live until it is final,
 * then prints its summary; the exit code is the run's, as `tasks run` would give.
 */
export function tasksWatchCommand(done: (code: number) => void): Command {
  const command = new Command('watch')
    .description('follow a run live until it ends, then print its summary')
    .argument('<task_id>', 'the task id printed by `baton tasks run`');
  return addConnectionOptions(command, 'print the final items/stats/summary document as JSON', ['results'], true).action(
    async (taskId: string, options: ConnectionOptions) => {
      checkTaskId(taskId);
      const clients = new Clients(options);
      const progress = ProgressLine.forCommand(options.json);
      try {
        const first = await clients.call('results', (c) => c.getRunStatus, { taskId });
        const nodes = first.run?.nodes ?? [];
        const say = (line: string) => {
          if (options.json) return;
          progress.clear();
          process.stdout.write(`${line}\n`);
        };
        say(`Watching task ${first.run?.task ?? ''} ${taskId} on ${nodes.length} nodes`);
        const follower = new RunFollower(clients, taskId, nodes, {
          onRunState: (state, view) => {
            if (state === RunState.RUN_STATE_RUNNING) progress.bar(countNodes(view).finished, nodes.length);
          },
          onNode: (result, view) => {
            // Without a terminal there is no bar: one line per node that finished, for logs.
            if (!progress.enabled && options.verbose && result.completed) say(`  ${result.host.padEnd(40)} ${nodeStateName(result.state)}`);
            progress.bar(countNodes(view).finished, nodes.length);
          },
        });
        await follower.done;
        progress.clear();
        say('');
        done(reportRun(statusDocument(await clients.call('results', (c) => c.getRunStatus, { taskId })), options));
      } finally {
        progress.clear();
        clients.close();
      }
    },
  );
}
