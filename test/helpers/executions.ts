import { existsSync, readFileSync } from 'node:fs';
import { sep } from 'node:path';

/**
 * How often each node ran a task, from the log the `once::count` fixture appends to: one line
 * per execution, the node's install dir (<state>/<node>/spool/<task id>/files).
 */
export function executions(log: string): Record<string, number> {
  const counts: Record<string, number> = {};
  const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
  for (const line of text.split('\n').filter(Boolean)) {
    const parts = line.split(sep);
    const node = parts[parts.lastIndexOf('spool') - 1];
    counts[node] = (counts[node] ?? 0) + 1;
  }
  return counts;
}
