import { Command } from 'commander';
import { checkTaskId } from '../task-id-argument';
import { addConnectionOptions, Clients, type ConnectionOptions } from '../connection';
import { addFilterOptions, filterFromOptions, type FilterOptions } from '../filter-options';
import { statusDocument, type StatusDocument } from '../status-document';
import { chooseColors, reportRun, type Colors } from '../summary-format';

interface StatusOptions extends Omit<ConnectionOptions, 'metadata'>, FilterOptions {
  /** mco's `--metadata` view (the metadata service is not used here, so no address flag clashes). */
  metadata?: boolean;
  summary?: boolean;
}

/**
 * Filters on status, as mco's (docs/choria-compat.md §5.4): only the items of the nodes the filter
 * selects now (discovery, offline nodes included), the run's counters unchanged.
 */
async function onlySelected(doc: StatusDocument, options: StatusOptions, clients: Clients): Promise<StatusDocument> {
  const filter = filterFromOptions(options);
  const empty = filter.identities.length + filter.classes.length + filter.facts.length + filter.agents.length + filter.compound.length === 0;
  if (empty) return doc;
  const { nodes } = await clients.call('scheduler', (c) => c.discoverNodes, { filter, includeOffline: true });
  const selected = new Set(nodes.map((n) => n.identity));
  return { ...doc, items: doc.items.filter((item) => selected.has(item.host)) };
}

function utc(seconds: number): string {
  return seconds > 0 ? `${new Date(seconds * 1000).toISOString().slice(0, 19).replace('T', ' ')} UTC` : 'not started';
}

/** The `--metadata` view of `mco tasks status` (docs/choria-compat.md §5.4): per node exit code, who ran it when, and what it printed. */
export function formatMetadataView(doc: StatusDocument, c: Colors): string[] {
  const lines = [`Requesting task metadata for request ${doc.summary.taskid}`, ''];
  for (const item of doc.items) {
    if (item.statuscode === 0 || item.statuscode === 1) {
      lines.push(`  ${item.host.padEnd(40)} ${(item.exitcode === 0 ? c.green : c.red)(String(item.exitcode))}`);
      lines.push(`    ${item.task} by ${item.callerid} at ${utc(item.start_time)}`);
      const printed = item.stdout !== '' && item.stdout !== null && item.stdout !== undefined;
      lines.push(
        `    completed: ${item.completed ? 'yes' : 'no'} runtime: ${item.runtime.toFixed(2)} stdout: ${printed ? 'yes' : 'no'} stderr: ${item.stderr ? 'yes' : 'no'}`,
      );
    } else if (item.statuscode === 3) {
      lines.push(`  ${item.host.padEnd(40)} Unknown Task`);
    } else {
      lines.push(`  ${item.host.padEnd(40)} ${item.statusmsg || item.state}`);
    }
    lines.push('');
  }
  lines.push(`${doc.items.length} / ${doc.summary.nodes} nodes`);
  return lines;
}

/** `baton tasks status <task id> [-v] [--metadata] [--json] [filters]`: every node's result of a run, or of the nodes the filters select. */
export function tasksStatusCommand(done: (code: number) => void): Command {
  const command = new Command('status')
    .description("show a run's results by task id")
    .argument('<task_id>', 'the task id printed by `baton tasks run`')
    .option('--metadata', 'per node: exit code, caller, start time, runtime and whether it printed anything')
    .option('--summary', 'print only the summary, not the failed nodes');
  return addConnectionOptions(addFilterOptions(command), 'print the items/stats/summary document as JSON', ['results', 'scheduler'], true).action(
    async (taskId: string, options: StatusOptions) => {
      checkTaskId(taskId);
      const clients = new Clients({ ...options, metadata: undefined });
      try {
        const doc = await onlySelected(statusDocument(await clients.call('results', (c) => c.getRunStatus, { taskId })), options, clients);
        if (options.metadata && !options.json) {
          process.stdout.write(`${formatMetadataView(doc, chooseColors(process.stdout, !options.color)).join('\n')}\n`);
          return done(0); // mco: --metadata exits 0 (docs/choria-compat.md §5.6)
        }
        if (!options.json && !options.verbose && !options.summary)
          process.stdout.write(`Requesting task status for request ${taskId}, showing failures only pass --verbose for all output\n\n`);
        done(reportRun(doc, { ...options, summaryOnly: options.summary === true }));
      } finally {
        clients.close();
      }
    },
  );
}
