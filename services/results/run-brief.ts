import type { NodeResult, Run } from '../../gen/baton/v1/run';
import { CorruptRecordError } from './corrupt-record-error';

/**
 * A node's brief: its stored NodeResult without the output (stdout, stderr, value, statusmsg),
 * as one short text in the run's brief hash (RedisKeys.runBriefs), written by the same scripts
 * and under the same rule as the full result (run-scripts.ts), so the two never disagree.
 *
 * Why: `bolt_task('<id>').exitcode > 0` over a 10,000-node run read every full result (JSON
 * documents holding up to 2 MiB of stdout each) to use two fields of each, ~90 ms against issue 5
 * point 5's 50 ms; a brief is ~30 bytes whatever the task printed.
 *
 * Encoding: `<state>,<exitcode>,<completed>,<runtime>,<start>,<statuscode>[,<tail>]`:
 * state the NodeState number; exitcode and statuscode integers, rounded as NodeResult.toJSON
 * stores them; completed `1` or `0`; runtime the number of seconds as JavaScript prints it;
 * start the start time in epoch ms, empty when unset; tail, only when the result's task or
 * callerid differ from the run's (a service may record its own, normalizeNodeResults),
 * `["<task>","<callerid>"]` as JSON. host is the hash field; task_id is always the run's.
 */

/** Proto JSON names (as resultFieldsOf gives them) of the NodeResult fields a brief holds. */
const BRIEF_JSON_NAMES: ReadonlySet<string> = new Set(['host', 'taskId', 'task', 'callerid', 'state', 'exitcode', 'completed', 'runtime', 'startTime', 'statuscode']);

/** Fields of a brief before its optional tail. */
const BRIEF_FIELD_COUNT = 6;

/** True when a brief holds every one of `jsonNames` (proto JSON names, from resultFieldsOf). */
export function briefHolds(jsonNames: readonly string[]): boolean {
  return jsonNames.every((name) => BRIEF_JSON_NAMES.has(name));
}

/** The brief of `result`, a result of `run` as it is stored (normalizeNodeResults or pendingNodeResult). */
export function encodeBrief(result: NodeResult, run: Run): string {
  const text = `${result.state},${Math.round(result.exitcode)},${result.completed ? 1 : 0},${result.runtime},${result.startTime?.getTime() ?? ''},${Math.round(result.statuscode)}`;
  return result.task === run.task && result.callerid === run.caller ? text : `${text},${JSON.stringify([result.task, result.callerid])}`;
}

function corrupt(host: string): CorruptRecordError {
  return new CorruptRecordError(`stored brief of ${host} is not one`);
}

/** A brief's number field; throws CorruptRecordError when it is none. */
function numberOf(text: string, host: string): number {
  const n = Number(text);
  if (text === '' || Number.isNaN(n)) throw corrupt(host);
  return n;
}

/** The task and callerid of a brief's tail (the text after its sixth comma). */
function tailOf(brief: string, host: string): [string, string] {
  let at = -1;
  for (let i = 0; i < BRIEF_FIELD_COUNT; i++) at = brief.indexOf(',', at + 1);
  let tail: unknown;
  try {
    tail = JSON.parse(brief.slice(at + 1));
  } catch {
    throw corrupt(host);
  }
  if (!Array.isArray(tail) || tail.length !== 2 || typeof tail[0] !== 'string' || typeof tail[1] !== 'string') throw corrupt(host);
  return [tail[0], tail[1]];
}

/**
 * The results of `run` that a flat HGETALL reply of its brief hash (host, brief, host, brief,
 * ...) stands for, each cut down to `jsonNames` (all held by a brief) exactly as projectResult
 * cuts a full result: a field not named keeps its default. Throws CorruptRecordError for an
 * entry that is not a brief.
 */
export function briefResults(run: Run, flat: readonly string[], jsonNames: readonly string[]): Map<string, NodeResult> {
  const want = (name: string) => jsonNames.includes(name);
  const [host, taskId, task, callerid, state, exitcode, completed, runtime, startTime, statuscode] = [
    want('host'),
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
  const results = new Map<string, NodeResult>();
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = flat[i];
    const brief = flat[i + 1];
    const f = brief.split(',');
    if (f.length < BRIEF_FIELD_COUNT) throw corrupt(name);
    const [ownTask, ownCaller] = f.length > BRIEF_FIELD_COUNT ? tailOf(brief, name) : [run.task, run.caller];
    results.set(name, {
      host: host ? name : '',
      taskId: taskId ? run.taskId : '',
      task: task ? ownTask : '',
      callerid: callerid ? ownCaller : '',
      state: state ? numberOf(f[0], name) : 0,
      exitcode: exitcode ? numberOf(f[1], name) : 0,
      stdout: '',
      stderr: '',
      value: undefined,
      completed: completed && f[2] === '1',
      runtime: runtime ? numberOf(f[3], name) : 0,
      startTime: startTime && f[4] !== '' ? new Date(numberOf(f[4], name)) : undefined,
      statuscode: statuscode ? numberOf(f[5], name) : 0,
      statusmsg: '',
    });
  }
  return results;
}
