import { status } from '@grpc/grpc-js';
import type { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import type {
  CancelRunRequest,
  CancelRunResponse,
  DiscoverNodesRequest,
  DiscoverNodesResponse,
  Node,
  SchedulerServiceServer,
} from '../../gen/baton/v1/scheduler_service';
import { BatonError, InvalidArgumentError } from '../../lib/errors';
import { unary } from '../../lib/grpc-client';
import { serverStreamHandler, unaryHandler } from '../../lib/grpc-server';
import type { Logger } from '../../lib/logger';
import { isTaskId } from '../../lib/task-id';
import type { AgentRegistry } from './agent-registry';
import { resultsServiceSource, runDiscovery } from './discovery-plan';
import type { IndexedNode, NodeIndex } from './node-index';
import type { RunOrchestrator } from './run-orchestrator';
import type { RunTracker } from './run-tracker';

/** What the SchedulerService works with. */
export interface SchedulerServiceOptions {
  orchestrator: RunOrchestrator;
  results: ResultsServiceClient;
  index: NodeIndex;
  registry: AgentRegistry;
  tracker: RunTracker;
  log: Logger;
}

/** The message WatchRun answers with until it is implemented. */
export const WATCH_RUN_UNIMPLEMENTED = 'WatchRun is not implemented yet; use ResultsService.WatchRunEvents';

/** The SchedulerService handlers: RunTask, WatchRun, CancelRun, DiscoverNodes. */
export function schedulerService(options: SchedulerServiceOptions): SchedulerServiceServer {
  const { log } = options;
  return {
    runTask: unaryHandler(log, (req, call) => options.orchestrator.runTask(req, call.metadata)),
    watchRun: serverStreamHandler(log, () => Promise.reject(new BatonError(status.UNIMPLEMENTED, 'NOT_IMPLEMENTED', WATCH_RUN_UNIMPLEMENTED))),
    cancelRun: unaryHandler(log, (req) => cancelRun(options, req)),
    discoverNodes: unaryHandler(log, (req) => discover(options, req)),
  };
}

/** Sends a CancelCommand to every node of the run connected here, and keeps nodes not yet started from starting. */
async function cancelRun(options: SchedulerServiceOptions, req: CancelRunRequest): Promise<CancelRunResponse> {
  if (!isTaskId(req.taskId)) {
    throw new InvalidArgumentError(`task_id '${req.taskId}' is not a task id; expected 32 lowercase hex characters`, [
      { field: 'task_id', description: 'expected 32 lowercase hex characters' },
    ]);
  }
  // NOT_FOUND for an unknown run passes through from the results service.
  const { run } = await unary(options.results, options.results.getRunStatus, { taskId: req.taskId });
  const tracked = options.tracker.get(req.taskId);
  if (tracked) tracked.cancelled = true;
  const nodes = (run?.nodes ?? []).filter((node) => options.registry.get(node)?.send({ $case: 'cancel', value: { taskId: req.taskId } }) === true);
  options.log.info({ taskId: req.taskId, nodes: nodes.length }, 'cancel sent');
  return { nodes: nodes.sort() };
}

async function discover(options: SchedulerServiceOptions, req: DiscoverNodesRequest): Promise<DiscoverNodesResponse> {
  const nowMs = Date.now();
  const found = await runDiscovery(options.index, req.filter, { listOffline: req.includeOffline, nowMs, runResults: resultsServiceSource(options.results) });
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
