import type { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import type {
  DiscoverNodesRequest,
  DiscoverNodesResponse,
  Node,
  SchedulerServiceServer,
} from '../../gen/baton/v1/scheduler_service';
import { serverStreamHandler, unaryHandler } from '../../lib/grpc-server';
import type { Logger } from '../../lib/logger';
import type { AgentRegistry } from './agent-registry';
import { resultsServiceSource, runDiscovery } from './discovery-plan';
import type { IndexedNode, NodeIndex } from './node-index';
import type { RunOrchestrator } from './run-orchestrator';
import { cancelRun } from './run-cancel';
import type { RunTracker } from './run-tracker';
import type { RunWatches } from './run-watch';

/** What the SchedulerService works with. */
export interface SchedulerServiceOptions {
  orchestrator: RunOrchestrator;
  results: ResultsServiceClient;
  index: NodeIndex;
  registry: AgentRegistry;
  tracker: RunTracker;
  watches: RunWatches;
  log: Logger;
}

/** The SchedulerService handlers: RunTask, WatchRun, CancelRun, DiscoverNodes. */
export function schedulerService(options: SchedulerServiceOptions): SchedulerServiceServer {
  const { log } = options;
  return {
    runTask: unaryHandler(log, (req, call) => options.orchestrator.runTask(req, call.metadata)),
    watchRun: serverStreamHandler(log, (req, call) => options.watches.watch(req, call)),
    cancelRun: unaryHandler(log, (req) => cancelRun(options, req)),
    discoverNodes: unaryHandler(log, (req) => discover(options, req)),
  };
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
