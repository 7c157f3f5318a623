import { MetadataServiceClient } from '../../gen/baton/v1/metadata_service';
import { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { SchedulerServiceService } from '../../gen/baton/v1/scheduler_service';
import { makeClient } from '../../lib/grpc-client';
import { startServer, type RunningServer } from '../../lib/grpc-server';
import type { AccessControl } from '../../lib/access-control';
import type { CallerBudgetOptions } from '../../lib/caller-budget';
import type { Logger } from '../../lib/logger';
import { closeRedis, createRedis, REDIS_QUIT_TIMEOUT_MS, RedisKeys } from '../../lib/redis';
import { UnavailableError } from '../../lib/errors';
import type { TlsFiles } from '../../lib/tls';
import { AGENT_GATEWAY_ROLES, AgentGateway } from './agent-gateway';
import { AgentGatewayServiceDefinition } from './encoded-response';
import { AgentRegistry } from './agent-registry';
import type { AgentSession } from './agent-session';
import { DispatchConsumer } from './dispatch-consumer';
import { DEFAULT_REPLICA_LEASE_MS, ReplicaLease } from './replica-lease';
import { StreamDispatcher } from './stream-dispatcher';
import { NodeIndex } from './node-index';
import { HeartbeatWriter } from './heartbeat-writer';
import { ResultBatcher, type ResultBatcherOptions } from './result-batcher';
import { ResultRecorder } from './result-recorder';
import { FinishedNotices } from './finished-notices';
import { DEFAULT_DOWNLOAD_TIMEOUT_S } from './download-gate';
import { DEFAULT_AGENT_LOST_AFTER_S, DEFAULT_RUN_LEASE_S, RunCoordinator } from './run-coordinator';
import { RunOrchestrator } from './run-orchestrator';
import { RunResumer } from './run-resumer';
import { RunStateStore } from './run-state';
import { RunRequests } from './run-requests';
import { RunTracker } from './run-tracker';
import { DEFAULT_HEARTBEATS_PER_S, HeldIntervals } from './heartbeat-interval';
import { RunWatches } from './run-watch';
import { RunStreams } from './run-stream';
import { HelloAdmission, type HelloAdmissionOptions } from './hello-admission';
import { AgentShedder } from './agent-shedder';
import { SCHEDULER_SERVICE_ROLES, schedulerService } from './scheduler-service';

/** Options of `startScheduler`. */
export interface SchedulerServerOptions {
  /** host:port to bind; port 0 picks a free port. */
  listen: string;
  /** host:port of the plaintext health-only listener (lib/grpc-server.ts `healthListen`); default none. */
  healthListen?: string;
  log: Logger;
  /** TLS files, used by the server and by its clients of the metadata and results services. */
  tls?: TlsFiles;
  redisUrl: string;
  keyPrefix: string;
  /** host:port of the metadata service (GetTask). */
  metadataAddress: string;
  /** host:port of the results service. */
  resultsAddress: string;
  /** host:port of the metadata service as agents reach it, sent in the Welcome; default metadataAddress. */
  agentMetadataAddress?: string;
  /** Seconds between agent heartbeats (the shortest interval when `heartbeatIntervalMaxS` is above it). */
  heartbeatIntervalS: number;
  /**
   * Longest heartbeat interval a Welcome asks for, in s; default heartbeatIntervalS (every agent
   * gets that). Above it, the interval grows with the agents held here (heartbeat-interval.ts),
   * and discovery judges freshness against this maximum. Every replica must have the same.
   */
  heartbeatIntervalMaxS?: number;
  /** Heartbeats per second a replica aims at when intervals may grow; default DEFAULT_HEARTBEATS_PER_S. */
  heartbeatsPerS?: number;
  /** Seconds nodes get to download the task files; default DEFAULT_DOWNLOAD_TIMEOUT_S. */
  downloadTimeoutS?: number;
  /** Drain grace period in ms; default DEFAULT_DRAIN_GRACE_MS. */
  drainGraceMs?: number;
  /** Authorization policy and audit log (config `policy-file`, `audit-log`); default: allow all, audit nothing. */
  access?: AccessControl;
  /** How agents' results are batched to the results service; default result-batcher.ts defaults. */
  resultBatching?: ResultBatcherOptions;
  /** Seconds a node's agent may be gone before its runs record it NO_RESPONSE "agent lost"; default DEFAULT_AGENT_LOST_AFTER_S. */
  agentLostAfterS?: number;
  /** Admission control of agent Hellos; default hello-admission.ts defaults. */
  helloAdmission?: HelloAdmissionOptions;
  /** Seconds a run's coordinator lease lives unless renewed (another scheduler takes the run over after that); default DEFAULT_RUN_LEASE_S. */
  runLeaseS?: number;
  /** Seconds between checks of a coordinated run's progress in the results service while no result of it arrives here; default RUN_REFRESH_MS. */
  runRefreshS?: number;
  /** Each operator's and agent's request budget (lib/caller-budget.ts); default its defaults. */
  callerBudget?: CallerBudgetOptions;
  /** This replica's name, the prefix of its replica ids; default the host name (replica-lease.ts). */
  replicaName?: string;
  /** Length of the replica lease in ms; default DEFAULT_REPLICA_LEASE_MS. */
  replicaLeaseMs?: number;
  /** Nodes of an index chunk from which a fact value has a bitmap; default RARE_FACT_HOLDERS (node-index.ts). */
  rareFactHolders?: number;
}

/** A running scheduler. */
export interface RunningScheduler {
  /** The bound address, host:port. */
  address: string;
  server: RunningServer;
  /** Drains the server (ending every agent stream), then closes clients and Redis. */
  stop(): Promise<void>;
  /** Closes clients and Redis after a drain (what `stop` does after draining). */
  close(): Promise<void>;
  /** This replica's lease (its id, whether it holds it). */
  lease: ReplicaLease;
}

/**
 * Starts the scheduler: the SchedulerService and the AgentGatewayService on one server,
 * with the node index in Redis and clients of the metadata and results services.
 */
export async function startScheduler(options: SchedulerServerOptions): Promise<RunningScheduler> {
  const { log } = options;
  const tls = options.tls ?? {};
  const redis = createRedis({ url: options.redisUrl, log, connectionName: 'baton-scheduler' });
  const metadata = makeClient(MetadataServiceClient, options.metadataAddress, tls);
  const results = makeClient(ResultsServiceClient, options.resultsAddress, tls);

  const keys = new RedisKeys(options.keyPrefix);
  const heartbeatIntervalMaxS = Math.max(options.heartbeatIntervalS, options.heartbeatIntervalMaxS ?? options.heartbeatIntervalS);
  // Until the lease knows what the live replicas' agents hold, freshness is judged against the
  // longest interval a replica may give an agent.
  const index = new NodeIndex(redis, keys, heartbeatIntervalMaxS, undefined, options.rareFactHolders);
  const heldIntervals = new HeldIntervals();
  const registry = new AgentRegistry<AgentSession>();
  const tracker = new RunTracker();
  const heartbeats = new HeartbeatWriter(index, log);
  const batcher = new ResultBatcher(results, options.resultBatching, (taskId) => tracker.get(taskId)?.pendingCount);
  const notices = new FinishedNotices(redis, keys, log);
  const admission = new HelloAdmission(options.helloAdmission);
  const gateway = new AgentGateway({
    index,
    heartbeats,
    registry,
    recorder: new ResultRecorder(batcher, tracker, log, notices),
    log,
    heartbeatIntervalS: options.heartbeatIntervalS,
    heartbeatIntervals:
      heartbeatIntervalMaxS > options.heartbeatIntervalS
        ? { maxS: heartbeatIntervalMaxS, heartbeatsPerS: options.heartbeatsPerS ?? DEFAULT_HEARTBEATS_PER_S }
        : undefined,
    heldIntervals,
    metadataAddress: options.agentMetadataAddress ?? options.metadataAddress,
    admission,
  });
  const requests = new RunRequests(redis, keys);
  // Each replica holds the streams of some agents; the lease says which replicas are alive
  // (docs/replicas.md). One that loses it ends its agents' streams so that they reconnect to a
  // live one, and takes no Hello until it has a new lease.
  // Sends agents above this replica's fair share to the others (a scale-up rebalances).
  const shedder = new AgentShedder({ redis, keys, registry, log, admission, leaseMs: options.replicaLeaseMs ?? DEFAULT_REPLICA_LEASE_MS });
  // The lease is renewed on a connection of its own (replica-lease.ts says why).
  const leaseRedis = createRedis({ url: options.redisUrl, log, connectionName: 'baton-scheduler-lease' });
  const lease = new ReplicaLease(redis, keys, log, {
    renewalRedis: leaseRedis,
    name: options.replicaName,
    leaseMs: options.replicaLeaseMs,
    onFenced: (reason) => void gateway.closeAll(new UnavailableError(`this scheduler lost its lease in Redis (${reason}); reconnect`)),
    heldHeartbeatIntervalS: () => heldIntervals.longestS(),
    onPeers: (peers, nowMs) => {
      shedder.onPeers(peers, nowMs);
      index.setPeers(peers.map((p) => p.id));
      consumer.onPeers(peers, nowMs);
    },
  });
  index.setReplica(lease);
  // Never below the configured interval: an agent welcomed since the last renewal holds at least that.
  index.setLongestHeartbeatInterval(() => Math.max(options.heartbeatIntervalS, lease.longestHeartbeatIntervalS(heartbeatIntervalMaxS)));
  const consumer = new DispatchConsumer({ redis, keys, index, registry, lease, log });
  try {
    await lease.start();
  } catch (err) {
    // Redis is not there yet: the lease is taken on a later renewal; Hellos fail until then.
    log.warn({ err: (err as Error).message }, 'could not take the replica lease yet; trying again every renewal period');
  }
  consumer.start();
  const dispatcher = new StreamDispatcher({ redis, keys, index, registry, lease, log });
  // Runs name their coordinator by its replica id, the one its owner bitmap and dispatch stream
  // carry; before the first lease (Redis not there yet) by the replica's name.
  const store = new RunStateStore(redis, keys, () => lease.id || lease.name, (options.runLeaseS ?? DEFAULT_RUN_LEASE_S) * 1000, leaseRedis);
  const coordinator = new RunCoordinator({
    store,
    results,
    dispatcher,
    connectedHere: (node) => registry.get(node)?.ready === true,
    index,
    tracker,
    log,
    downloadTimeoutMs: (options.downloadTimeoutS ?? DEFAULT_DOWNLOAD_TIMEOUT_S) * 1000,
    agentLostAfterMs: (options.agentLostAfterS ?? DEFAULT_AGENT_LOST_AFTER_S) * 1000,
    refreshMs: options.runRefreshS === undefined ? undefined : options.runRefreshS * 1000,
    notices,
  });
  const orchestrator = new RunOrchestrator({
    metadata,
    results,
    index,
    tracker,
    store,
    coordinator,
    requests,
    log,
    downloadTimeoutS: options.downloadTimeoutS,
    access: options.access,
  });
  const resumer = new RunResumer({ store, coordinator, orchestrator, results, tracker, log });
  const watches = new RunWatches(results, log);
  const streams = new RunStreams(orchestrator, results, log);

  let server: RunningServer;
  try {
    server = await startServer({
      listen: options.listen,
      healthListen: options.healthListen,
      log,
      tls,
      drainGraceMs: options.drainGraceMs,
      callerBudget: options.callerBudget,
      services: [
        {
          name: 'baton.v1.SchedulerService',
          definition: SchedulerServiceService,
          implementation: schedulerService({ orchestrator, results, index, dispatcher, tracker, store, watches, streams, log, access: options.access }),
          roles: SCHEDULER_SERVICE_ROLES,
        },
        {
          name: 'baton.v1.AgentGatewayService',
          definition: AgentGatewayServiceDefinition,
          implementation: gateway.implementation(),
          roles: AGENT_GATEWAY_ROLES,
        },
      ],
    });
  } catch (err) {
    await consumer.stop();
    await lease.stop();
    redis.disconnect();
    leaseRedis.disconnect();
    metadata.close();
    results.close();
    throw err;
  }
  // Runs whose coordinator died (this scheduler before a restart, or another replica).
  resumer.start();
  shedder.start();
  // Agent streams never end by themselves: end them when draining so agents reconnect elsewhere,
  // and wait for their nodes to be marked offline before Redis closes.
  let agentsClosed: Promise<void> = Promise.resolve();
  server.onDrain(() => {
    shedder.stop();
    agentsClosed = gateway.closeAll();
    watches.endAll(); // WatchRun streams end with OK; clients resume with the last event id
    streams.endAll(); // StartRun streams end with UNAVAILABLE naming the run; clients follow it elsewhere
  });
  let closing: Promise<void> | undefined;
  const withinQuitTimeout = (work: Promise<unknown>): Promise<unknown> =>
    Promise.race([work, new Promise((resolve) => setTimeout(resolve, REDIS_QUIT_TIMEOUT_MS).unref())]);
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      // Runs coordinated here are handed over: their leases lapse now, so another scheduler (or
      // this one after its restart) resumes them without waiting for the lease to expire.
      resumer.stop();
      shedder.stop();
      await withinQuitTimeout(coordinator.releaseAll());
      // Marking nodes offline needs Redis; when Redis is gone (it may be why we stop), give up
      // after the quit timeout: the index's staleness rule covers nodes left marked online.
      // Results and heartbeats received before the streams ended are still sent (each has the
      // same bound: whatever is not stored then, the agents re-send).
      const landed = agentsClosed.then(() => Promise.all([batcher.flush().then(() => notices.flush()), heartbeats.close()]));
      await withinQuitTimeout(landed);
      // Its backlog goes to a survivor at once rather than when the lease would have ended.
      // A read or a script sent while Redis is unreachable never settles once its connection is
      // closed, so these too are bounded.
      await withinQuitTimeout(consumer.stop());
      await withinQuitTimeout(lease.stop());
      metadata.close();
      results.close();
      await Promise.all([closeRedis(redis), closeRedis(leaseRedis)]);
    })());
  return {
    address: server.address,
    server,
    lease,
    close,
    stop: async () => {
      await server.drain();
      await close();
    },
  };
}
