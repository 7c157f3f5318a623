import { ServerInterceptingCall, ServerListenerBuilder, ResponderBuilder, status as grpcStatus, type ServerInterceptor } from '@grpc/grpc-js';
import type { ConnectRequest } from '../gen/baton/v1/agent_gateway_service';
import type { Filter } from '../gen/baton/v1/filter';
import type { GetTaskRequest, ListTasksRequest, ReadTaskFileRequest } from '../gen/baton/v1/metadata_service';
import type {
  CreateRunRequest,
  GetRunStatusRequest,
  ListRunsRequest,
  RecordNodeResultsRequest,
  GetRunProgressRequest,
  UpdateRunStateRequest,
  WatchRunEventsRequest,
} from '../gen/baton/v1/results_service';
import type { NodeResult, Run } from '../gen/baton/v1/run';
import type { CancelRunRequest, DiscoverNodesRequest, RunTaskRequest, StartRunRequest, WatchRunRequest } from '../gen/baton/v1/scheduler_service';
import type { CallerBudgets } from './caller-budget';
import { toServiceError, type BatonError } from './errors';
import { LIMITS, LimitChecker } from './limits';
import type { Logger } from './logger';

/**
 * Which limits of lib/limits.ts apply to which field of which request, for every method a
 * Baton server serves, and the server interceptor that applies them to every message before
 * the handler sees it. A method without a row here is refused by a test
 * (request-limits.test.ts), so a new RPC cannot arrive unbounded.
 */

/** Checks one decoded message of a method. */
type MessageCheck = (message: unknown, c: LimitChecker) => void;

/**
 * A check of messages of type T. The interceptor calls it with the message grpc-js decoded
 * with the method's own deserializer, so the message is a T.
 */
function of<T>(check: (message: T, c: LimitChecker) => void): MessageCheck {
  return (message, c) => check(message as T, c);
}

/** A Filter, under `field`. */
export function checkFilter(c: LimitChecker, field: string, f: Filter | undefined): void {
  if (!f) return;
  c.texts(`${field}.identities`, f.identities, LIMITS.filterIdentities, LIMITS.filterTerm);
  c.texts(`${field}.classes`, f.classes, LIMITS.filterClasses, LIMITS.filterTerm);
  c.texts(`${field}.agents`, f.agents, LIMITS.filterAgents, LIMITS.filterTerm);
  c.texts(`${field}.compound`, f.compound, LIMITS.filterCompound, LIMITS.compoundExpression);
  if (c.list(`${field}.facts`, f.facts, LIMITS.filterFacts)) {
    f.facts.forEach((ff, i) => {
      c.text(`${field}.facts[${i}].fact`, ff.fact, LIMITS.filterTerm);
      c.text(`${field}.facts[${i}].value`, ff.value, LIMITS.filterTerm);
    });
  }
}

/** A NodeResult, under `field`. */
function checkNodeResult(c: LimitChecker, field: string, r: NodeResult | undefined): void {
  if (!r) return;
  c.text(`${field}.host`, r.host, LIMITS.identity);
  c.text(`${field}.task_id`, r.taskId, LIMITS.taskId);
  c.text(`${field}.task`, r.task, LIMITS.taskName);
  c.text(`${field}.callerid`, r.callerid, LIMITS.caller);
  c.text(`${field}.stdout`, r.stdout, LIMITS.resultOutput);
  c.text(`${field}.stderr`, r.stderr, LIMITS.resultOutput);
  c.text(`${field}.statusmsg`, r.statusmsg, LIMITS.errorText);
  c.struct(`${field}.value`, r.value);
}

/** A Run as CreateRun receives it, under `field`. */
function checkRun(c: LimitChecker, field: string, r: Run | undefined): void {
  if (!r) return;
  c.text(`${field}.task_id`, r.taskId, LIMITS.taskId);
  c.text(`${field}.task`, r.task, LIMITS.taskName);
  c.text(`${field}.environment`, r.environment, LIMITS.environment);
  c.text(`${field}.caller`, r.caller, LIMITS.caller);
  c.texts(`${field}.nodes`, r.nodes, LIMITS.runNodes, LIMITS.identity);
  checkFilter(c, `${field}.filter`, r.filter);
  c.text(`${field}.input_json`, r.inputJson, LIMITS.storedInputJson);
  c.text(`${field}.error`, r.error, LIMITS.errorText);
  c.text(`${field}.request_id`, r.requestId, LIMITS.requestId);
}

/** The facts and classes an agent describes (Hello, FactsUpdate), under `field`. */
function checkDescription(c: LimitChecker, field: string, facts: unknown, classes: string[]): void {
  c.struct(`${field}.facts`, facts);
  c.texts(`${field}.classes`, classes, LIMITS.nodeClasses, LIMITS.indexedText);
}

/** One message of an agent's Connect stream. */
const checkConnect = of<ConnectRequest>((m, c) => {
  c.map('trace_context', m.traceContext, LIMITS.traceContextEntries, LIMITS.traceContextText);
  const msg = m.message;
  switch (msg?.$case) {
    case 'hello':
      c.text('hello.identity', msg.value.identity, LIMITS.identity);
      checkDescription(c, 'hello', msg.value.facts, msg.value.classes);
      c.texts('hello.agents', msg.value.agents, LIMITS.nodeAgents, LIMITS.indexedText);
      c.text('hello.version', msg.value.version, LIMITS.agentVersion);
      if (c.list('hello.unacknowledged_results', msg.value.unacknowledgedResults, LIMITS.helloResults)) {
        msg.value.unacknowledgedResults.forEach((f, i) => checkNodeResult(c, `hello.unacknowledged_results[${i}].result`, f.result));
      }
      return;
    case 'factsUpdate':
      checkDescription(c, 'facts_update', msg.value.facts, msg.value.classes);
      return;
    case 'downloadResult':
      c.text('download_result.request_id', msg.value.requestId, LIMITS.requestId);
      c.text('download_result.error', msg.value.error, LIMITS.errorText);
      return;
    case 'taskStarted':
      c.text('task_started.task_id', msg.value.taskId, LIMITS.taskId);
      return;
    case 'taskFinished':
      checkNodeResult(c, 'task_finished.result', msg.value.result);
      return;
    default:
      return; // heartbeat: no text, no list
  }
});

const checkReflection: MessageCheck = (m, c) => c.anyText('', m, LIMITS.reflectionText);

const checkHealth = of<{ service?: string }>((m, c) => c.text('service', m.service, LIMITS.healthService));

/** WatchRun and WatchRunEvents: a run and where to resume its events. */
const checkWatch = of<WatchRunRequest | WatchRunEventsRequest>((m, c) => {
  c.text('task_id', m.taskId, LIMITS.taskId);
  c.text('resume_token', m.resumeToken, LIMITS.resumeToken);
});

/** A RunTaskRequest, its field names after `prefix` (`run.` inside a StartRunRequest). */
function checkRunTask(c: LimitChecker, prefix: string, m: RunTaskRequest | undefined): void {
  if (!m) return;
  c.text(`${prefix}task`, m.task, LIMITS.taskName);
  c.text(`${prefix}environment`, m.environment, LIMITS.environment);
  c.text(`${prefix}input_json`, m.inputJson, LIMITS.inputJson);
  checkFilter(c, `${prefix}filter`, m.filter);
  c.text(`${prefix}run_as`, m.runAs, LIMITS.runAs);
  c.text(`${prefix}request_id`, m.requestId, LIMITS.requestId);
}

/** Every method a Baton server serves, by path, with the check of its request messages. */
export const REQUEST_LIMITS: ReadonlyMap<string, MessageCheck> = new Map<string, MessageCheck>([
  ['/baton.v1.MetadataService/ListEnvironments', () => undefined],
  [
    '/baton.v1.MetadataService/ListTasks',
    of<ListTasksRequest>((m, c) => {
      c.text('environment', m.environment, LIMITS.environment);
      c.text('page_token', m.pageToken, LIMITS.pageToken);
    }),
  ],
  [
    '/baton.v1.MetadataService/GetTask',
    of<GetTaskRequest>((m, c) => {
      c.text('environment', m.environment, LIMITS.environment);
      c.text('task', m.task, LIMITS.taskName);
    }),
  ],
  [
    '/baton.v1.MetadataService/ReadTaskFile',
    of<ReadTaskFileRequest>((m, c) => {
      c.text('environment', m.environment, LIMITS.environment);
      c.text('path', m.path, LIMITS.taskFilePath);
      c.text('sha256', m.sha256, LIMITS.sha256);
    }),
  ],
  [
    '/baton.v1.ResultsService/GetRunStatus',
    of<GetRunStatusRequest>((m, c) => {
      c.text('task_id', m.taskId, LIMITS.taskId);
      c.texts('result_fields.fields', m.resultFields?.fields, LIMITS.resultFields, LIMITS.resultFieldName);
      c.text('result_fields.where', m.resultFields?.where, LIMITS.resultWhere);
    }),
  ],
  [
    '/baton.v1.ResultsService/ListRuns',
    of<ListRunsRequest>((m, c) => {
      c.text('page_token', m.pageToken, LIMITS.pageToken);
      c.text('task', m.task, LIMITS.taskName);
      c.text('caller', m.caller, LIMITS.caller);
    }),
  ],
  ['/baton.v1.ResultsService/WatchRunEvents', checkWatch],
  ['/baton.v1.ResultsService/CreateRun', of<CreateRunRequest>((m, c) => checkRun(c, 'run', m.run))],
  [
    '/baton.v1.ResultsService/RecordNodeResults',
    of<RecordNodeResultsRequest>((m, c) => {
      c.text('task_id', m.taskId, LIMITS.taskId);
      if (c.list('results', m.results, LIMITS.recordResults)) m.results.forEach((r, i) => checkNodeResult(c, `results[${i}]`, r));
    }),
  ],
  [
    '/baton.v1.ResultsService/UpdateRunState',
    of<UpdateRunStateRequest>((m, c) => {
      c.text('task_id', m.taskId, LIMITS.taskId);
      c.text('reason', m.reason, LIMITS.errorText);
    }),
  ],
  [
    '/baton.v1.ResultsService/GetRunProgress',
    of<GetRunProgressRequest>((m, c) => {
      c.text('task_id', m.taskId, LIMITS.taskId);
      c.texts('hosts', m.hosts, LIMITS.progressHosts, LIMITS.identity);
    }),
  ],
  ['/baton.v1.SchedulerService/RunTask', of<RunTaskRequest>((m, c) => checkRunTask(c, '', m))],
  ['/baton.v1.SchedulerService/StartRun', of<StartRunRequest>((m, c) => checkRunTask(c, 'run.', m.run))],
  ['/baton.v1.SchedulerService/WatchRun', checkWatch],
  ['/baton.v1.SchedulerService/CancelRun', of<CancelRunRequest>((m, c) => c.text('task_id', m.taskId, LIMITS.taskId))],
  ['/baton.v1.SchedulerService/DiscoverNodes', of<DiscoverNodesRequest>((m, c) => checkFilter(c, 'filter', m.filter))],
  ['/baton.v1.AgentGatewayService/Connect', checkConnect],
  ['/grpc.health.v1.Health/Check', checkHealth],
  ['/grpc.health.v1.Health/List', () => undefined],
  ['/grpc.health.v1.Health/Watch', checkHealth],
  ['/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', checkReflection],
  ['/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo', checkReflection],
]);

/** The limit error of one message of `path`, or undefined when it is within every limit (or the method has no row). */
export function limitProblem(path: string, message: unknown) {
  const check = REQUEST_LIMITS.get(path);
  if (!check) return undefined;
  const c = new LimitChecker();
  check(message, c);
  return c.error();
}

/**
 * A server interceptor applying each caller's request budget (lib/caller-budget.ts, when
 * `budgets` is given) as a call's metadata arrives, and REQUEST_LIMITS to every message
 * received, before the handler sees it. A caller over its budget gets RESOURCE_EXHAUSTED (held
 * back until its next token is due, at most a second) and its message is never decoded; a message over a limit ends the call with INVALID_ARGUMENT naming the
 * field and the limit, and nothing it carried, or anything sent after it, reaches the handler.
 * A streaming handler sees its call cancelled, as when the caller goes away. Every call that
 * ends INVALID_ARGUMENT, here or in the handler, is charged to its caller's budget as refused.
 */
export function limitsInterceptor(log: Logger, budgets?: CallerBudgets): ServerInterceptor {
  return (descriptor, call) => {
    const caller = budgets?.callerOf(call);
    let refused = false;
    const refuse = (err: BatonError): void => {
      refused = true;
      call.sendStatus(toServiceError(err, log) as Parameters<typeof call.sendStatus>[0]);
    };
    const listener = new ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        const over = caller === undefined || !budgets ? undefined : budgets.admit(caller);
        if (!over || !budgets) return next(metadata);
        refused = true;
        // One line when a caller goes over, not one per refused call: a flood must not become a log flood.
        if (over.first)
          log.warn({ method: descriptor.path, peerAddress: call.getPeer(), caller }, `calls refused: ${budgets.refusal({ ...over, holdMs: 0 }).message}`);
        if (over.holdMs === 0) return refuse(budgets.refusal(over));
        // Unref'd: a held refusal never keeps a draining process alive.
        setTimeout(() => refuse(budgets.refusal(over)), over.holdMs).unref();
      })
      .withOnReceiveMessage((message, next) => {
        if (refused) return;
        const problem = limitProblem(descriptor.path, message);
        if (!problem) return next(message);
        log.warn({ method: descriptor.path, peerAddress: call.getPeer(), field: problem.metadata.field }, `request refused: ${problem.message.slice(0, 200)}`);
        if (caller !== undefined) budgets?.refused(caller);
        refuse(problem);
      })
      .withOnReceiveHalfClose((next) => {
        if (!refused) next();
      })
      .build();
    const responder = new ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendStatus((status, next) => {
        if (caller !== undefined && status.code === grpcStatus.INVALID_ARGUMENT) budgets?.refused(caller);
        next(status);
      })
      .build();
    return new ServerInterceptingCall(call, responder);
  };
}
