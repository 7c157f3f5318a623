import { NodeResult, type Run } from '../../gen/baton/v1/run';
import { InvalidArgumentError } from '../../lib/errors';
import { runItems } from '../../lib/run-status';

/**
 * The slim GetRunStatus (`result_fields`, results_service.proto): only the NodeResult fields a
 * caller names are parsed and sent. The scheduler's `bolt_task('<id>').exitcode > 0` needs two
 * fields of each node; over a 10,000-node run the whole status (stdout, stderr, value of every
 * node, encoded and decoded) costs time that grows with the output (bench/discovery-bench measures it).
 */

/** NodeResult fields a slim read may name: proto field name → proto JSON name (how results are stored). */
const RESULT_FIELDS: Readonly<Record<string, string>> = {
  host: 'host',
  task_id: 'taskId',
  task: 'task',
  callerid: 'callerid',
  state: 'state',
  exitcode: 'exitcode',
  stdout: 'stdout',
  stderr: 'stderr',
  value: 'value',
  completed: 'completed',
  runtime: 'runtime',
  start_time: 'startTime',
  statuscode: 'statuscode',
  statusmsg: 'statusmsg',
};

/** Fields every slim item carries: who, and whether the node ran the task. */
const ALWAYS_FIELDS = ['host', 'state', 'completed', 'start_time'];

/**
 * The proto JSON names of the fields a slim read returns (those named, and ALWAYS_FIELDS).
 * Throws InvalidArgumentError naming each unknown field.
 */
export function resultFieldsOf(fields: string[]): string[] {
  const unknown = fields.filter((f) => !Object.hasOwn(RESULT_FIELDS, f));
  if (unknown.length > 0) {
    const expected = Object.keys(RESULT_FIELDS).join(', ');
    const violations = unknown.map((f) => ({
      field: 'result_fields',
      description: `result_fields: unknown NodeResult field ${JSON.stringify(f)}; expected one of ${expected}`,
    }));
    throw new InvalidArgumentError(violations.map((v) => v.description).join('; '), violations);
  }
  return [...new Set([...ALWAYS_FIELDS, ...fields])].map((f) => RESULT_FIELDS[f]);
}

/** A stored result (parsed proto JSON) cut down to `jsonNames`. */
export function projectResult(json: unknown, jsonNames: readonly string[]): NodeResult {
  const whole = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>;
  const slim: Record<string, unknown> = {};
  for (const name of jsonNames) if (name in whole) slim[name] = whole[name];
  return NodeResult.fromJSON(slim);
}

/** The slim items of a run: one per node (a pending one where none is stored), sorted by host, cut down to `jsonNames`. */
export function slimItems(run: Run, results: ReadonlyMap<string, NodeResult>, jsonNames: string[]): NodeResult[] {
  // Stored results are already cut down; only the few pending ones are built whole here.
  return runItems(run, results).map((r) => (results.get(r.host) === r ? r : projectResult(NodeResult.toJSON(r), jsonNames)));
}
