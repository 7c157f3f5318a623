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

/**
 * Colour on only for a terminal, never with NO_COLOR, always with FORCE_COLOR: decided here,
 * since picocolors alone colours a pipe under CI=true (docs/toolchain.md "CLI conventions").
 */
export function chooseColors(stream: NodeJS.WriteStream, noColorFlag = false): Colors {
  if (noColorFlag || process.env.NO_COLOR) return NO_COLORS;
  if (process.env.FORCE_COLOR) return ANSI_COLORS;
  return stream.isTTY && process.env.TERM !== 'dumb' ? ANSI_COLORS : NO_COLORS;
}

function isFailure(item: StatusItem): boolean {
  return item.state !== 'succeeded' && item.state !== 'running' && item.state !== 'pending' && item.state !== 'downloading' && item.state !== 'downloaded';
}

/**
 * What a node printed, without what the status line already says: `_error` is the status
 * message (as mco shows it), and the empty `_output` a failed task leaves says nothing.
 */
function stdoutText(item: StatusItem, verbose: boolean): string {
  if (typeof item.stdout === 'string') return item.stdout.trimEnd();
  if (item.stdout && typeof item.stdout === 'object' && !Array.isArray(item.stdout)) {
    const rest = { ...(item.stdout as Record<string, unknown>) };
    if (!verbose || isFailure(item)) delete rest._error;
    if (rest._output === '') delete rest._output;
    const keys = Object.keys(rest);
    if (keys.length === 0) return '';
    if (keys.length === 1 && typeof rest._output === 'string') return rest._output.trimEnd();
    return JSON.stringify(rest);
  }
  return item.stdout === null || item.stdout === undefined ? '' : JSON.stringify(item.stdout);
}

/**
 * A failed node's status message without the stderr it quotes (stderr gets its own lines) and
 * without the "but stderr contained:" that introduced it: the first line is the status, any
 * further lines of the message follow it.
 */
function statusLines(item: StatusItem): string[] {
  let msg = item.statusmsg || item.state;
  const stderr = item.stderr.trim();
  if (stderr) msg = msg.replace(stderr, '');
  msg = msg.replace(/,? but stderr contained:?/, '');
  const lines = msg
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.length > 0 ? lines : [item.state];
}

/** Per-node blocks as `mco tasks` prints them, one per node: failures only, every node with `verbose`. */
export function formatNodeResults(doc: StatusDocument, verbose: boolean, c: Colors): string[] {
  const lines: string[] = [];
  for (const item of doc.items) {
    const failed = isFailure(item);
    if (!failed && !verbose) continue;
    const [status, ...more] = failed ? statusLines(item) : [item.state];
    lines.push(`${(failed ? c.red : c.green)(item.host.padEnd(40))} ${failed ? c.yellow(status) : status}`);
    lines.push(...more.map((l) => `   ${l}`));
    const out = stdoutText(item, verbose);
    if (out) lines.push(...out.split('\n').map((l) => `   ${l}`));
    if (item.stderr.trim())
      lines.push(
        ...item.stderr
          .trimEnd()
          .split('\n')
          .map((l, i) => `   ${i === 0 ? 'stderr: ' : '        '}${l}`),
      );
    lines.push('');
  }
  return lines;
}

/** Most node names the summary prints in one row; the rest are counted. */
const SUMMARY_NAMES_MAX = 10;

/** `3 (node1, node2, node3)`, the names cut at SUMMARY_NAMES_MAX. */
function countWithNames(names: string[]): string {
  if (names.length === 0) return '0';
  const shown = names.slice(0, SUMMARY_NAMES_MAX).join(', ');
  return `${names.length} (${shown}${names.length > SUMMARY_NAMES_MAX ? `, and ${names.length - SUMMARY_NAMES_MAX} more` : ''})`;
}

/** The summary block of `mco tasks` (docs/choria-compat.md §5.5), with its defects fixed: non-responders listed, no NaN. */
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
  if (s.noresponses.length > 0) lines.push(row('No Response', c.red(countWithNames(s.noresponses))));
  lines.push('');
  lines.push(row('Successful', (s.success > 0 ? c.green : c.red)(String(s.success))));
  // The names of the failed nodes (no-responders and cancelled ones count as failed): what an
  // operator needs next, or `--rerun <id> failure` picks them.
  const failedNames = doc.items.filter(isFailure).map((i) => i.host);
  lines.push(row('Failed', (s.failed > 0 ? c.red : (x: string) => x)(failedNames.length === s.failed ? countWithNames(failedNames) : String(s.failed))));
  const cancelled = doc.items.filter((i) => i.state === 'cancelled').map((i) => i.host);
  if (cancelled.length > 0) lines.push(row('Cancelled', c.yellow(countWithNames(cancelled))));
  lines.push('');
  // No node finished yet: an average of 0.00s would be a made-up figure.
  lines.push(row('Average Run Time', s.completed > 0 ? `${s.average_runtime.toFixed(2)}s` : '- (no node finished yet)'));
  // Nodes waiting for their batch are not `running` in the stats, but the wait left them unfinished
  // too.
  const unfinished = doc.items.filter((i) => !isFailure(i) && i.state !== 'succeeded').length;
  if (unfinished > 0) {
    lines.push(
      '',
      `${unfinished} nodes are still running: follow them with 'baton tasks watch ${doc.summary.taskid}', or check later with 'baton tasks status ${doc.summary.taskid}'`,
    );
  }
  return lines;
}

/**
 * Prints a run's result the way `run` and `status` both do (the JSON document, or the failed
 * nodes and the summary) and returns the exit code: 0 all succeeded, 1 a node failed, 4 still
 * running.
 */
export function reportRun(
  doc: StatusDocument,
  options: { json?: boolean; verbose?: boolean; color: boolean; summaryOnly?: boolean },
  out: NodeJS.WriteStream = process.stdout,
): number {
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
