import { EXIT } from './cli-error';
import type { StatusDocument, StatusItem } from './status-document';

/** Colour functions; identity functions when colour is off. */
export interface Colors {
  bold(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
}

/** No colour. */
export const NO_COLORS: Colors = { bold: (s) => s, red: (s) => s, green: (s) => s, yellow: (s) => s };

/** ANSI colours. */
export const ANSI_COLORS: Colors = {
  bold: (s) => `\x1b[1m${s}\x1b[22m`,
  red: (s) => `\x1b[31m${s}\x1b[39m`,
  green: (s) => `\x1b[32m${s}\x1b[39m`,
  yellow: (s) => `\x1b[33m${s}\x1b[39m`,
};

/** Colour on only for a terminal, never with NO_COLOR, always with FORCE_COLOR (toolchain.md §5). */
export function chooseColors(stream: NodeJS.WriteStream, noColorFlag = false): Colors {
  if (noColorFlag || process.env.NO_COLOR) return NO_COLORS;
  if (process.env.FORCE_COLOR) return ANSI_COLORS;
  return stream.isTTY && process.env.TERM !== 'dumb' ? ANSI_COLORS : NO_COLORS;
}

function isFailure(item: StatusItem): boolean {
  return item.state !== 'succeeded' && item.state !== 'running' && item.state !== 'pending' && item.state !== 'downloading' && item.state !== 'downloaded';
}

function stdoutText(item: StatusItem, verbose: boolean): string {
  if (typeof item.stdout === 'string') return item.stdout.trimEnd();
  if (item.stdout && typeof item.stdout === 'object' && !verbose) {
    // Like mco: the _error is already shown as the status message.
    const rest = { ...(item.stdout as Record<string, unknown>) };
    delete rest._error;
    return Object.keys(rest).length === 0 ? '' : JSON.stringify(rest);
  }
  return JSON.stringify(item.stdout);
}

/** Per-node lines as `mco tasks` prints them: failures only, every node with `verbose`. */
export function formatNodeResults(doc: StatusDocument, verbose: boolean, c: Colors): string[] {
  const lines: string[] = [];
  for (const item of doc.items) {
    const failed = isFailure(item);
    if (!failed && !verbose) continue;
    const status = failed ? item.statusmsg || item.state : item.state;
    lines.push(`${(failed ? c.red : c.green)(item.host.padEnd(40))} ${failed ? c.yellow(status) : status}`);
    const out = stdoutText(item, verbose);
    if (out) lines.push(...out.split('\n').map((l) => `   ${l}`));
    if (item.stderr.trim()) lines.push(...item.stderr.trimEnd().split('\n').map((l) => `   ${l}`));
    lines.push('');
  }
  return lines;
}

/** The summary block of `mco tasks` (choria-tasks.md §5.5), with its defects fixed: non-responders listed, no NaN. */
export function formatSummary(doc: StatusDocument, c: Colors): string[] {
  const s = doc.stats;
  const row = (label: string, value: string) => `${label.padStart(32)}: ${value}`;
  const lines: string[] = [];
  if (s.names.length > 1 || s.callers.length > 1) {
    lines.push(c.red('WARNING: received more than one task name or caller for this task: results were forged or a cache is corrupt'));
  }
  lines.push(`Summary for task ${c.bold(doc.summary.taskid)}`, '');
  lines.push(row('Task Name', s.names.join(',')));
  lines.push(row('Caller', s.callers.join(',')));
  lines.push(row('Completed', (s.completed > 0 ? c.green : c.yellow)(String(s.completed))));
  lines.push(row('Running', (s.running > 0 ? c.yellow : c.green)(String(s.running))));
  if (s.task_not_known > 0) lines.push(row('Unknown Task', c.red(String(s.task_not_known))));
  if (s.wrapper_failure > 0) lines.push(row('Wrapper Failure', c.red(String(s.wrapper_failure))));
  if (s.noresponses.length > 0) lines.push(row('No Response', c.red(`${s.noresponses.length} (${s.noresponses.join(', ')})`)));
  lines.push('');
  lines.push(row('Successful', (s.success > 0 ? c.green : c.red)(String(s.success))));
  lines.push(row('Failed', (s.failed > 0 ? c.red : (x: string) => x)(String(s.failed))));
  lines.push('');
  lines.push(row('Average Run Time', `${s.average_runtime.toFixed(2)}s`));
  // Nodes waiting for their batch are not `running` in the stats, but the wait left them unfinished too.
  const unfinished = doc.items.filter((i) => !isFailure(i) && i.state !== 'succeeded').length;
  if (unfinished > 0) {
    lines.push('', `${unfinished} nodes are still running: follow them with 'baton tasks watch ${doc.summary.taskid}', or check later with 'baton tasks status ${doc.summary.taskid}'`);
  }
  return lines;
}

/**
 * Prints a run's result the way `run` and `status` both do (the JSON document, or the failed
 * nodes and the summary) and returns the exit code: 0 all succeeded, 1 a node failed, 4 still
 * running.
 */
export function reportRun(doc: StatusDocument, options: { json?: boolean; verbose?: boolean; color: boolean; summaryOnly?: boolean }, out: NodeJS.WriteStream = process.stdout): number {
  if (options.json) {
    out.write(`${JSON.stringify(doc, null, 2)}\n`);
  } else {
    const colors = chooseColors(out, !options.color);
    const nodeLines = options.summaryOnly ? [] : formatNodeResults(doc, options.verbose === true, colors);
    out.write(`${[...nodeLines, ...formatSummary(doc, colors)].join('\n')}\n`);
  }
  if (doc.summary.success) return EXIT.OK;
  return doc.stats.failed > 0 ? EXIT.FAILED : EXIT.STILL_RUNNING;
}
