import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { ConnectRequest, TaskFinished } from '../../gen/baton/v1/agent_gateway_service';
import { GetTaskRequest, ListTasksRequest, ReadTaskFileRequest } from '../../gen/baton/v1/metadata_service';
import {
  CreateRunRequest,
  GetRunStatusRequest,
  ListRunsRequest,
  RecordNodeResultsRequest,
  UpdateRunStateRequest,
  WatchRunEventsRequest,
} from '../../gen/baton/v1/results_service';
import { CancelRunRequest, DiscoverNodesRequest, RunTaskRequest, WatchRunRequest } from '../../gen/baton/v1/scheduler_service';
import { Filter } from '../../gen/baton/v1/filter';
import { NodeResult } from '../../gen/baton/v1/run';
import { readServiceError } from '../../lib/errors';
import { METADATA_MAX_RECEIVE_MESSAGE_BYTES } from '../../lib/grpc-server';
import { LIMITS, type LimitName } from '../../lib/limits';
import type { TlsFiles } from '../../lib/tls';
import { useDevStack } from '../helpers/dev-stack';
import { rawCall, type RawKind } from '../helpers/raw-call';
import { diffSnapshots, heartbeatVolatile, snapshotStore } from '../helpers/store-snapshot';

/**
 * Over-long values of every field of every RPC, table-driven, against a whole stack with mutual
 * TLS: each string one character over its limit and far over it, each list one entry over. Every
 * case is answered within 1 s with INVALID_ARGUMENT whose one-line message names the field and
 * the limit, and the store (every Redis key and value, every file of the agents' spool and
 * cache) is the same before and after. The requests are encoded before the clock starts.
 */

/** Within this many ms every case is answered. */
const ANSWER_MS = 1_000;

const TASK_ID = '0123456789abcdef0123456789abcdef';

type Service = 'metadata' | 'results' | 'scheduler';
type Cert = 'operator' | 'service' | 'agent';

/** One case: a request over one limit, and the field the answer must name. */
interface Case {
  name: string;
  service: Service;
  path: string;
  kind: RawKind;
  cert: Cert;
  field: string;
  limit: LimitName;
  encode: () => Uint8Array;
  /** The answer when the request is larger than the service accepts at all. */
  tooLarge?: boolean;
  /** The answer when the request nests deeper than the protobuf decoder goes. */
  undecodable?: boolean;
}

/** One RPC: where it is served, how it is called, and how a request of it is encoded. */
interface Rpc<T> {
  service: Service;
  path: string;
  kind: RawKind;
  cert: Cert;
  encode: (partial: T) => Uint8Array;
}

const rpc = <T>(service: Service, method: string, kind: RawKind, cert: Cert, encode: (partial: T) => Uint8Array): Rpc<T> => {
  const name = { metadata: 'MetadataService', results: 'ResultsService', scheduler: method === 'Connect' ? 'AgentGatewayService' : 'SchedulerService' }[
    service
  ];
  return { service, path: `/baton.v1.${name}/${method}`, kind, cert, encode };
};

const RPCS = {
  listTasks: rpc<Partial<ListTasksRequest>>('metadata', 'ListTasks', 'unary', 'operator', (p) =>
    ListTasksRequest.encode(ListTasksRequest.fromPartial(p)).finish(),
  ),
  getTask: rpc<Partial<GetTaskRequest>>('metadata', 'GetTask', 'unary', 'operator', (p) =>
    GetTaskRequest.encode(GetTaskRequest.fromPartial({ task: 'demo::echo', ...p })).finish(),
  ),
  readTaskFile: rpc<Partial<ReadTaskFileRequest>>('metadata', 'ReadTaskFile', 'server-stream', 'agent', (p) =>
    ReadTaskFileRequest.encode(ReadTaskFileRequest.fromPartial({ path: 'demo/tasks/echo.sh', ...p })).finish(),
  ),
  getRunStatus: rpc<Partial<GetRunStatusRequest>>('results', 'GetRunStatus', 'unary', 'operator', (p) =>
    GetRunStatusRequest.encode(GetRunStatusRequest.fromPartial({ taskId: TASK_ID, ...p })).finish(),
  ),
  listRuns: rpc<Partial<ListRunsRequest>>('results', 'ListRuns', 'unary', 'operator', (p) => ListRunsRequest.encode(ListRunsRequest.fromPartial(p)).finish()),
  watchRunEvents: rpc<Partial<WatchRunEventsRequest>>('results', 'WatchRunEvents', 'server-stream', 'operator', (p) =>
    WatchRunEventsRequest.encode(WatchRunEventsRequest.fromPartial({ taskId: TASK_ID, ...p })).finish(),
  ),
  createRun: rpc<Partial<NonNullable<CreateRunRequest['run']>>>('results', 'CreateRun', 'unary', 'service', (p) =>
    CreateRunRequest.encode(
      CreateRunRequest.fromPartial({ run: { taskId: TASK_ID, task: 'demo::echo', environment: 'production', nodes: ['node1'], ...p } }),
    ).finish(),
  ),
  recordNodeResults: rpc<Partial<RecordNodeResultsRequest>>('results', 'RecordNodeResults', 'unary', 'service', (p) =>
    RecordNodeResultsRequest.encode(RecordNodeResultsRequest.fromPartial({ taskId: TASK_ID, ...p })).finish(),
  ),
  updateRunState: rpc<Partial<UpdateRunStateRequest>>('results', 'UpdateRunState', 'unary', 'service', (p) =>
    UpdateRunStateRequest.encode(UpdateRunStateRequest.fromPartial({ taskId: TASK_ID, state: 3, ...p })).finish(),
  ),
  runTask: rpc<Partial<RunTaskRequest>>('scheduler', 'RunTask', 'unary', 'operator', (p) =>
    RunTaskRequest.encode(RunTaskRequest.fromPartial({ task: 'demo::echo', inputJson: '{"message":"hi"}', filter: { identities: ['node1'] }, ...p })).finish(),
  ),
  watchRun: rpc<Partial<WatchRunRequest>>('scheduler', 'WatchRun', 'server-stream', 'operator', (p) =>
    WatchRunRequest.encode(WatchRunRequest.fromPartial({ taskId: TASK_ID, ...p })).finish(),
  ),
  cancelRun: rpc<Partial<CancelRunRequest>>('scheduler', 'CancelRun', 'unary', 'operator', (p) =>
    CancelRunRequest.encode(CancelRunRequest.fromPartial({ taskId: TASK_ID, ...p })).finish(),
  ),
  discoverNodes: rpc<Partial<DiscoverNodesRequest>>('scheduler', 'DiscoverNodes', 'unary', 'operator', (p) =>
    DiscoverNodesRequest.encode(DiscoverNodesRequest.fromPartial(p)).finish(),
  ),
  connect: rpc<Partial<ConnectRequest>>('scheduler', 'Connect', 'bidi', 'agent', (p) => ConnectRequest.encode(ConnectRequest.fromPartial(p)).finish()),
};

/** A string `n` characters long. */
const chars = (n: number): string => 'a'.repeat(n);

/** Two cases for a string field: one character over its limit, and far over (1 MiB, or 64 KiB at the metadata service, whose messages are at most 1 MiB). */
function textCases<T>(r: Rpc<T>, field: string, limit: LimitName, build: (value: string) => T): Case[] {
  const max = LIMITS[limit].max;
  const far = r.service === 'metadata' ? 64 * 1024 : Math.max(1024 * 1024, 2 * max);
  return [max + 1, far].map((n) => ({ name: `${r.path} ${field}: ${n} characters`, ...r, field, limit, encode: () => r.encode(build(chars(n))) }));
}

/** One case for a list field: one entry over its limit. */
function listCase<T>(r: Rpc<T>, field: string, limit: LimitName, build: (n: number) => T): Case {
  const n = LIMITS[limit].max + 1;
  return { name: `${r.path} ${field}: ${n} entries`, ...r, field, limit, encode: () => r.encode(build(n)) };
}

/** A Struct nesting `levels` deep. */
function nested(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: 1 };
  for (let i = 1; i < levels; i++) value = { x: value };
  return value;
}

/**
 * Two cases for a Struct field: one level over LIMITS.structDepth (refused naming the field),
 * and 1,000 levels, past the protobuf decoder's recursion limit (refused by grpc-js before any
 * check: INTERNAL, `Error deserializing request`).
 */
function depthCases<T>(r: Rpc<T>, field: string, build: (levels: number) => T): Case[] {
  return [LIMITS.structDepth.max + 1, 1_000].map((levels) => ({
    name: `${r.path} ${field}: ${levels} levels`,
    ...r,
    field,
    limit: 'structDepth' as const,
    undecodable: levels > 30,
    encode: () => r.encode(build(levels)),
  }));
}

/** A list of `n` distinct short strings. */
const many = (n: number): string[] => Array.from({ length: n }, (_, i) => `n${i}`);

/** Every limit of a Filter, under `at`, through `build`. */
function filterCases<T>(r: Rpc<T>, at: string, build: (f: Partial<Filter>) => T): Case[] {
  return [
    listCase(r, `${at}.identities`, 'filterIdentities', (n) => build({ identities: many(n) })),
    ...textCases(r, `${at}.identities[0]`, 'filterTerm', (v) => build({ identities: [v] })),
    listCase(r, `${at}.classes`, 'filterClasses', (n) => build({ classes: many(n) })),
    ...textCases(r, `${at}.classes[0]`, 'filterTerm', (v) => build({ classes: [v] })),
    listCase(r, `${at}.agents`, 'filterAgents', (n) => build({ agents: many(n) })),
    ...textCases(r, `${at}.agents[0]`, 'filterTerm', (v) => build({ agents: [v] })),
    listCase(r, `${at}.facts`, 'filterFacts', (n) => build({ facts: many(n).map((fact) => ({ fact, operator: 1, value: 'x' })) })),
    ...textCases(r, `${at}.facts[0].fact`, 'filterTerm', (v) => build({ facts: [{ fact: v, operator: 1, value: 'x' }] })),
    ...textCases(r, `${at}.facts[0].value`, 'filterTerm', (v) => build({ facts: [{ fact: 'role', operator: 1, value: v }] })),
    listCase(r, `${at}.compound`, 'filterCompound', (n) => build({ compound: Array.from({ length: n }, () => 'role=web') })),
    ...textCases(r, `${at}.compound[0]`, 'compoundExpression', (v) => build({ compound: [v] })),
  ];
}

/** Every limit of a NodeResult, under `at`, through `build`. */
function resultCases<T>(r: Rpc<T>, at: string, build: (result: Partial<NodeResult>) => T): Case[] {
  const texts: Array<[string, keyof NodeResult, LimitName]> = [
    ['host', 'host', 'identity'],
    ['task_id', 'taskId', 'taskId'],
    ['task', 'task', 'taskName'],
    ['callerid', 'callerid', 'caller'],
    ['stdout', 'stdout', 'resultOutput'],
    ['stderr', 'stderr', 'resultOutput'],
    ['statusmsg', 'statusmsg', 'errorText'],
  ];
  return [
    ...texts.flatMap(([field, key, limit]) => textCases(r, `${at}.${field}`, limit, (v) => build({ host: 'node1', state: 2, [key]: v }))),
    ...depthCases(r, `${at}.value`, (levels) => build({ host: 'node1', state: 2, value: nested(levels) })),
  ];
}

const hello = (p: Partial<NonNullable<Extract<ConnectRequest['message'], { $case: 'hello' }>['value']>>): Partial<ConnectRequest> => ({
  message: {
    $case: 'hello',
    value: { identity: 'node1', classes: [], agents: [], version: '1', unacknowledgedResults: [], followsHeartbeatInterval: false, ...p },
  },
});
const factsUpdate = (p: { facts?: Record<string, unknown>; classes?: string[] }): Partial<ConnectRequest> => ({
  message: { $case: 'factsUpdate', value: { classes: [], ...p } },
});

const CASES: Case[] = [
  ...textCases(RPCS.listTasks, 'environment', 'environment', (environment) => ({ environment })),
  ...textCases(RPCS.listTasks, 'page_token', 'pageToken', (pageToken) => ({ pageToken })),
  ...textCases(RPCS.getTask, 'environment', 'environment', (environment) => ({ environment })),
  ...textCases(RPCS.getTask, 'task', 'taskName', (task) => ({ task })),
  ...[1024 * 1024, 10 * 1024 * 1024].map((n) => ({
    ...textCases(RPCS.getTask, 'task', 'taskName', (task) => ({ task }))[0],
    name: `/baton.v1.MetadataService/GetTask task: ${n} characters`,
    tooLarge: true,
    encode: () => RPCS.getTask.encode({ task: chars(n) }),
  })),
  ...textCases(RPCS.readTaskFile, 'environment', 'environment', (environment) => ({ environment })),
  ...textCases(RPCS.readTaskFile, 'path', 'taskFilePath', (path) => ({ path })),
  ...textCases(RPCS.readTaskFile, 'sha256', 'sha256', (sha256) => ({ sha256 })),
  ...textCases(RPCS.getRunStatus, 'task_id', 'taskId', (taskId) => ({ taskId })),
  listCase(RPCS.getRunStatus, 'result_fields.fields', 'resultFields', (n) => ({ resultFields: { fields: many(n), where: '', hostsOnly: false } })),
  ...textCases(RPCS.getRunStatus, 'result_fields.fields[0]', 'resultFieldName', (v) => ({ resultFields: { fields: [v], where: '', hostsOnly: false } })),
  ...textCases(RPCS.getRunStatus, 'result_fields.where', 'resultWhere', (where) => ({ resultFields: { fields: [], where, hostsOnly: false } })),
  ...textCases(RPCS.listRuns, 'page_token', 'pageToken', (pageToken) => ({ pageToken })),
  ...textCases(RPCS.listRuns, 'task', 'taskName', (task) => ({ task })),
  ...textCases(RPCS.listRuns, 'caller', 'caller', (caller) => ({ caller })),
  ...textCases(RPCS.watchRunEvents, 'task_id', 'taskId', (taskId) => ({ taskId })),
  ...textCases(RPCS.watchRunEvents, 'resume_token', 'resumeToken', (resumeToken) => ({ resumeToken })),
  ...textCases(RPCS.createRun, 'run.task_id', 'taskId', (taskId) => ({ taskId })),
  ...textCases(RPCS.createRun, 'run.task', 'taskName', (task) => ({ task })),
  ...textCases(RPCS.createRun, 'run.environment', 'environment', (environment) => ({ environment })),
  ...textCases(RPCS.createRun, 'run.caller', 'caller', (caller) => ({ caller })),
  listCase(RPCS.createRun, 'run.nodes', 'runNodes', (n) => ({ nodes: many(n) })),
  ...textCases(RPCS.createRun, 'run.nodes[0]', 'identity', (v) => ({ nodes: [v] })),
  ...textCases(RPCS.createRun, 'run.input_json', 'storedInputJson', (inputJson) => ({ inputJson })),
  ...textCases(RPCS.createRun, 'run.error', 'errorText', (error) => ({ error })),
  ...textCases(RPCS.createRun, 'run.request_id', 'requestId', (requestId) => ({ requestId })),
  ...filterCases(RPCS.createRun, 'run.filter', (filter) => ({ filter: Filter.fromPartial(filter) })),
  ...textCases(RPCS.recordNodeResults, 'task_id', 'taskId', (taskId) => ({ taskId })),
  listCase(RPCS.recordNodeResults, 'results', 'recordResults', (n) => ({
    results: Array.from({ length: n }, () => NodeResult.fromPartial({ host: 'node1', state: 2 })),
  })),
  ...resultCases(RPCS.recordNodeResults, 'results[0]', (result) => ({ results: [NodeResult.fromPartial(result)] })),
  ...textCases(RPCS.updateRunState, 'task_id', 'taskId', (taskId) => ({ taskId })),
  ...textCases(RPCS.updateRunState, 'reason', 'errorText', (reason) => ({ reason })),
  ...textCases(RPCS.runTask, 'task', 'taskName', (task) => ({ task })),
  ...textCases(RPCS.runTask, 'environment', 'environment', (environment) => ({ environment })),
  ...textCases(RPCS.runTask, 'input_json', 'inputJson', (inputJson) => ({ inputJson })),
  ...textCases(RPCS.runTask, 'run_as', 'runAs', (runAs) => ({ runAs })),
  ...textCases(RPCS.runTask, 'request_id', 'requestId', (requestId) => ({ requestId })),
  ...filterCases(RPCS.runTask, 'filter', (filter) => ({ filter: Filter.fromPartial(filter) })),
  ...textCases(RPCS.watchRun, 'task_id', 'taskId', (taskId) => ({ taskId })),
  ...textCases(RPCS.watchRun, 'resume_token', 'resumeToken', (resumeToken) => ({ resumeToken })),
  ...textCases(RPCS.cancelRun, 'task_id', 'taskId', (taskId) => ({ taskId })),
  ...filterCases(RPCS.discoverNodes, 'filter', (filter) => ({ filter: Filter.fromPartial(filter) })),
  listCase(RPCS.connect, 'trace_context', 'traceContextEntries', (n) => ({ traceContext: Object.fromEntries(many(n).map((k) => [k, 'v'])), ...hello({}) })),
  ...textCases(RPCS.connect, 'trace_context["traceparent"]', 'traceContextText', (v) => ({ traceContext: { traceparent: v }, ...hello({}) })),
  ...textCases(RPCS.connect, 'hello.identity', 'identity', (identity) => hello({ identity })),
  ...textCases(RPCS.connect, 'hello.version', 'agentVersion', (version) => hello({ version })),
  listCase(RPCS.connect, 'hello.classes', 'nodeClasses', (n) => hello({ classes: many(n) })),
  ...textCases(RPCS.connect, 'hello.classes[0]', 'indexedText', (v) => hello({ classes: [v] })),
  listCase(RPCS.connect, 'hello.agents', 'nodeAgents', (n) => hello({ agents: many(n) })),
  ...textCases(RPCS.connect, 'hello.agents[0]', 'indexedText', (v) => hello({ agents: [v] })),
  ...depthCases(RPCS.connect, 'hello.facts', (levels) => hello({ facts: nested(levels) })),
  listCase(RPCS.connect, 'hello.unacknowledged_results', 'helloResults', (n) =>
    hello({ unacknowledgedResults: Array.from({ length: n }, () => TaskFinished.fromPartial({ result: { host: 'node1', state: 2 } })) }),
  ),
  ...resultCases(RPCS.connect, 'hello.unacknowledged_results[0].result', (result) => hello({ unacknowledgedResults: [TaskFinished.fromPartial({ result })] })),
  ...depthCases(RPCS.connect, 'facts_update.facts', (levels) => factsUpdate({ facts: nested(levels) })),
  listCase(RPCS.connect, 'facts_update.classes', 'nodeClasses', (n) => factsUpdate({ classes: many(n) })),
  ...textCases(RPCS.connect, 'facts_update.classes[0]', 'indexedText', (v) => factsUpdate({ classes: [v] })),
  ...textCases(RPCS.connect, 'download_result.request_id', 'requestId', (requestId) => ({
    message: { $case: 'downloadResult' as const, value: { requestId, ok: false, downloaded: 0, error: '' } },
  })),
  ...textCases(RPCS.connect, 'download_result.error', 'errorText', (error) => ({
    message: { $case: 'downloadResult' as const, value: { requestId: 'r', ok: false, downloaded: 0, error } },
  })),
  ...textCases(RPCS.connect, 'task_started.task_id', 'taskId', (taskId) => ({ message: { $case: 'taskStarted' as const, value: { taskId } } })),
  ...resultCases(RPCS.connect, 'task_finished.result', (result) => ({
    message: { $case: 'taskFinished' as const, value: { result: NodeResult.fromPartial(result) } },
  })),
];

describe('over-long values of every field of every RPC, against a stack with mutual TLS', () => {
  const fleet = useDevStack({ agents: 2, tls: true, logLevel: 'error' });
  const tlsFor = (cert: Cert, service: Service): TlsFiles => {
    const tls = fleet.stack.tls;
    assert.ok(tls, 'the stack runs with TLS');
    if (cert === 'operator') return tls.operator('alice');
    const name = cert === 'agent' ? 'agent-node1' : `service-${service === 'results' ? 'scheduler' : service}`;
    return { ca: tls.ca, cert: join(tls.dir, `${name}.pem`), key: join(tls.dir, `${name}.key`) };
  };
  const snapshot = () =>
    snapshotStore({
      redisUrl: fleet.stack.addresses.redis,
      dirs: fleet.stack.agentNames.map((n) => fleet.stack.agentDir(n)),
      volatile: heartbeatVolatile('baton'),
    });

  it(`has at least 130 cases, every one naming a field (${CASES.length})`, () => {
    assert.ok(CASES.length >= 130, `${CASES.length} cases`);
    assert.equal(new Set(CASES.map((c) => c.name)).size, CASES.length, 'case names are distinct');
  });

  for (const c of CASES) {
    it(c.name, async () => {
      const request = c.encode();
      const before = await snapshot();
      const { status: answer, ms } = await rawCall(fleet.stack.addresses[c.service], tlsFor(c.cert, c.service), c.path, c.kind, request);
      const limit = LIMITS[c.limit];
      if (c.undecodable) {
        assert.equal(answer.code, status.INTERNAL, answer.details);
        assert.equal(answer.details, 'Error deserializing request');
      } else if (c.tooLarge) {
        assert.equal(answer.code, status.RESOURCE_EXHAUSTED, answer.details);
        assert.equal(answer.details, `Received message larger than max (${request.length} vs ${METADATA_MAX_RECEIVE_MESSAGE_BYTES})`);
      } else {
        const report = readServiceError(Object.assign(new Error(answer.details), answer));
        assert.equal(report.code, status.INVALID_ARGUMENT, `${status[report.code]}: ${report.message}`);
        assert.doesNotMatch(report.message, /\n/, 'one line');
        assert.ok(report.message.startsWith(`${c.field} `), `the message names ${c.field}: ${report.message}`);
        assert.match(report.message, new RegExp(`at most ${limit.max} ${limit.unit} are accepted`));
        assert.equal(report.violations[0]?.field, c.field);
        assert.ok(report.message.length <= 1_024, `${report.message.length} characters`);
      }
      assert.ok(ms < ANSWER_MS, `answered in ${Math.round(ms)} ms`);
      assert.deepEqual(diffSnapshots(before, await snapshot()), [], 'the store is unchanged');
    });
  }
});
