import { NodeResult, type Run } from '../../gen/baton/v1/run';
import { CorruptRecordError } from './corrupt-record-error';
import { projectResult } from './run-result-fields';
import { pendingNodeResult } from '../../lib/run-status';

/**
 * A node's brief: its stored NodeResult without the output (stdout, stderr, value, statusmsg),
 * as one short text in the run's brief hash (RedisKeys.runBriefs), written by the same scripts
 * and under the same rule as the full result (run-scripts.ts), so the two never disagree.
 *
 * Why: `bolt_task('<id>').exitcode > 0` over a 10,000-node run read every full result (JSON
 * documents holding up to 2 MiB of stdout each) to use two fields of each; a brief is a few dozen
 * bytes whatever the task printed.
 *
 * Encoding: `<node>,<state>,<exitcode>,<completed>,<runtime>,<start>,<statuscode>[,<tail>]`:
 * node the host's position in the run's nodes (sorted and distinct, normalizeNewRun), so a read
 * needs only the values (HVALS, cheaper than HGETALL's hosts and values) and places each without
 * a map or a sort of every host; state the NodeState number;
 * exitcode and statuscode integers, rounded as NodeResult.toJSON stores them; completed `1` or
 * `0`; runtime the number of seconds as JavaScript prints it; start the start time in epoch ms,
 * empty when unset; tail, only when the result's task or callerid differ from the run's (a
 * service may record its own, normalizeNodeResults), `["<task>","<callerid>"]` as JSON. The
 * host is the hash field; task_id is always the run's.
 */

/** Proto JSON names (as resultFieldsOf gives them) of the NodeResult fields a brief holds. */
const BRIEF_JSON_NAMES: ReadonlySet<string> = new Set([
  'host',
  'taskId',
  'task',
  'callerid',
  'state',
  'exitcode',
  'completed',
  'runtime',
  'startTime',
  'statuscode',
]);

/** Fields of a brief before its optional tail. */
const BRIEF_FIELD_COUNT = 7;

/** True when a brief holds every one of `jsonNames` (proto JSON names, from resultFieldsOf). */
export function briefHolds(jsonNames: readonly string[]): boolean {
  return jsonNames.every((name) => BRIEF_JSON_NAMES.has(name));
}

/**
 * The brief of `result`, a result of `run` as it is stored (normalizeNodeResults or
 * pendingNodeResult), whose host is `run.nodes[index]`.
 */
export function encodeBrief(result: NodeResult, run: Pick<Run, 'task' | 'caller'>, index: number): string {
  return `${index},${briefBody(result, run)}`;
}

/**
 * A brief without its leading position: what recording a result sends, the record script
 * keeping the position already stored for the host (so nothing looks the host up in the run's
 * nodes).
 */
export function briefBody(result: NodeResult, run: Pick<Run, 'task' | 'caller'>): string {
  const text = `${result.state},${Math.round(result.exitcode)},${result.completed ? 1 : 0},${result.runtime},${result.startTime?.getTime() ?? ''},${Math.round(result.statuscode)}`;
  return result.task === run.task && result.callerid === run.caller ? text : `${text},${JSON.stringify([result.task, result.callerid])}`;
}

function corrupt(brief: string): CorruptRecordError {
  return new CorruptRecordError(`stored brief ${JSON.stringify(brief.slice(0, 100))} is not one`);
}

/** The integer in `text` from `start` to `end` (exclusive), NaN when it is none. */
function intBetween(text: string, start: number, end: number): number {
  const negative = text.charCodeAt(start) === 45; // '-'
  let n = 0;
  let i = negative ? start + 1 : start;
  if (i >= end) return NaN;
  for (; i < end; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return NaN;
    n = n * 10 + digit;
  }
  return negative ? -n : n;
}

/** The task and callerid of a brief's tail (the text from `start`). */
function tailOf(brief: string, start: number): [string, string] {
  let tail: unknown;
  try {
    tail = JSON.parse(brief.slice(start));
  } catch {
    throw corrupt(brief);
  }
  if (!Array.isArray(tail) || tail.length !== 2 || typeof tail[0] !== 'string' || typeof tail[1] !== 'string') throw corrupt(brief);
  return [tail[0], tail[1]];
}

/**
 * The slim items of `run` that `briefs` (the values of its brief hash) stand for: one per node
 * in the order of its nodes (sorted, normalizeNewRun), a pending one where a node has no brief,
 * each cut down to `jsonNames` (from resultFieldsOf, so host among them; all held by a brief)
 * exactly as projectResult cuts a full result: a field not named keeps its default. Throws
 * CorruptRecordError for an entry that is not a brief of a node of the run, or a second brief
 * of a node.
 */
export function briefItems(run: Run, briefs: readonly string[], jsonNames: readonly string[]): NodeResult[] {
  const want = (name: string) => jsonNames.includes(name);
  const [taskId, task, callerid, state, exitcode, completed, runtime, startTime, statuscode] = [
    want('taskId'),
    want('task'),
    want('callerid'),
    want('state'),
    want('exitcode'),
    want('completed'),
    want('runtime'),
    want('startTime'),
    want('statuscode'),
  ];
  const nodes = run.nodes;
  const items = new Array<NodeResult | undefined>(nodes.length).fill(undefined);
  const at: number[] = new Array<number>(BRIEF_FIELD_COUNT).fill(0);
  for (const brief of briefs) {
    // Parsed in place (indexOf, digits) rather than split and Number: this loop runs once per
    // node of the run, and splitting allocates an array and a string per field.
    let comma = -1;
    for (let f = 0; f < BRIEF_FIELD_COUNT - 1; f++) {
      comma = brief.indexOf(',', comma + 1);
      if (comma < 0) throw corrupt(brief);
      at[f] = comma;
    }
    const index = intBetween(brief, 0, at[0]);
    if (!(index >= 0 && index < nodes.length) || items[index] !== undefined) throw corrupt(brief);
    const tailComma = brief.indexOf(',', comma + 1);
    const end = tailComma < 0 ? brief.length : tailComma;
    const own = tailComma < 0 ? undefined : tailOf(brief, tailComma + 1);
    const result: NodeResult = {
      host: nodes[index],
      taskId: taskId ? run.taskId : '',
      task: task ? (own?.[0] ?? run.task) : '',
      callerid: callerid ? (own?.[1] ?? run.caller) : '',
      state: state ? intBetween(brief, at[0] + 1, at[1]) : 0,
      exitcode: exitcode ? intBetween(brief, at[1] + 1, at[2]) : 0,
      stdout: '',
      stderr: '',
      value: undefined,
      completed: completed && brief.charCodeAt(at[2] + 1) === 49, // '1'
      runtime: runtime ? Number(brief.slice(at[3] + 1, at[4])) : 0,
      startTime: startTime && at[5] > at[4] + 1 ? new Date(intBetween(brief, at[4] + 1, at[5])) : undefined,
      statuscode: statuscode ? intBetween(brief, at[5] + 1, end) : 0,
      statusmsg: '',
    };
    if (
      Number.isNaN(result.state) ||
      Number.isNaN(result.exitcode) ||
      Number.isNaN(result.runtime) ||
      Number.isNaN(result.statuscode) ||
      Number.isNaN(result.startTime?.getTime())
    ) {
      throw corrupt(brief);
    }
    items[index] = result;
  }
  return items.map((item, i) => item ?? projectResult(NodeResult.toJSON(pendingNodeResult(run, nodes[i])), jsonNames));
}
