import type { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import type { DiscoverNodesRequest, DiscoverNodesResponse, Node, SchedulerServiceServer } from '../../gen/baton/v1/scheduler_service';
import { AccessControl, actingCaller } from '../../lib/access-control';
import { serverStreamHandler, unaryHandler } from '../../lib/grpc-server';
import { compileFilter } from '../../lib/filter-language';
import type { Logger } from '../../lib/logger';
import type { MethodRoles } from '../../lib/method-roles';
import type { Dispatcher } from './dispatcher';
import { resultsServiceSource, runDiscovery } from './discovery-plan';
import type { IndexedNode, NodeIndex } from './node-index';
import { filterForAudit, type RunOrchestrator } from './run-orchestrator';
import { cancelRun } from './run-cancel';
import type { RunStateStore } from './run-state';
import type { RunTracker } from './run-tracker';
import type { RunWatches } from './run-watch';
import type { RunStreams } from './run-stream';

/**
 * Who may call the SchedulerService (lib/method-roles.ts): operators, and services
 * acting for one; never an agent, which could otherwise run tasks on every other node.
 */
export const SCHEDULER_SERVICE_ROLES: MethodRoles = { default: ['operator', 'service'] };

/** What the SchedulerService works with. */
export interface SchedulerServiceOptions {
  orchestrator: RunOrchestrator;
  results: ResultsServiceClient;
  index: NodeIndex;
  /** How CancelRun reaches the agents. */
  dispatcher: Dispatcher;
  tracker: RunTracker;
  /** Runs' orchestration state (CancelRun sets the cancel flag there). */
  store: RunStateStore;
  watches: RunWatches;
  /** StartRun's streams. */
  streams: RunStreams;
  log: Logger;
  /** The policy (`cancel`, `discover`) and the audit log; default: everything allowed, nothing audited. */
  access?: AccessControl;
}

/** The SchedulerService handlers: RunTask, StartRun, WatchRun, CancelRun, DiscoverNodes. */
export function schedulerService(options: SchedulerServiceOptions): SchedulerServiceServer {
  const { log } = options;
  const access = options.access ?? AccessControl.none(log);
  // actingCaller is undefined for a service certificate: such calls serve a request checked already.
  return {
    runTask: unaryHandler(log, (req, call) => options.orchestrator.runTask(req, call, { checkAs: actingCaller(call) })),
    startRun: serverStreamHandler(log, (req, call) => options.streams.start(req, call)),
    watchRun: serverStreamHandler(log, (req, call) => options.watches.watch(req, call)),
    cancelRun: unaryHandler(log, (req, call) => cancelRun({ ...options, access }, req, actingCaller(call))),
    discoverNodes: unaryHandler(log, (req, call) => discover(options, access, req, actingCaller(call))),
  };
}

/**
 * DiscoverNodes; the policy's `discover` check comes after discovery and before the answer. A
 * rule with `nodes` judges every match, offline ones included, so they are listed for it.
 */
async function discover(
  options: SchedulerServiceOptions,
  access: AccessControl,
  req: DiscoverNodesRequest,
  caller: string | undefined,
): Promise<DiscoverNodesResponse> {
  const nowMs = Date.now();
  const check = caller === undefined ? undefined : { caller, action: 'discover' as const };
  const judgeNodes = check !== undefined && access.needsNodes(check);
  const found = await runDiscovery(options.index, compileFilter(req.filter), {
    listOffline: req.includeOffline || judgeNodes,
    nowMs,
    runResults: resultsServiceSource(options.results, { caller }),
  });
  if (check) {
    const nodes = judgeNodes ? await options.index.load([...found.online, ...found.offline]) : undefined;
    access.authorize({ ...check, nodes }, { filter: filterForAudit(req.filter), nodes: found.online.length + found.offlineCount });
  }
  const listed = req.includeOffline ? [...found.online, ...found.offline].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)) : found.online;
  const online = new Set(found.online);
  const nodes = await options.index.load(listed);
  return { nodes: nodes.map((n) => toNode(n, online.has(n.identity))), offlineMatches: req.includeOffline ? 0 : found.offlineCount };
}

/** An index entry as the API's Node message. */
export function toNode(n: IndexedNode, online: boolean): Node {
  return {
    identity: n.identity,
    online,
    lastSeen: new Date(n.lastSeenMs),
    facts: n.facts,
    classes: n.classes,
    agents: n.agents,
    version: n.version,
  };
}
