import type { RedisClient as Redis } from '../../lib/redis-client';
import { RunCommand } from '../../gen/baton/v1/agent_gateway_service';
import type { RedisKeys } from '../../lib/redis';
import {
  BEGIN_RUN_STATE_SCRIPT,
  CANCEL_RUN_STATE_SCRIPT,
  FINISH_RUN_STATE_SCRIPT,
  RELEASE_RUN_LEASE_SCRIPT,
  RENEW_RUN_LEASE_SCRIPT,
  TAKE_OVER_RUN_SCRIPT,
  TRANSITION_RUN_STATE_SCRIPT,
} from './run-state-scripts';

/**
 * Where a coordinated run stands; Redis holds it (`run:{id}:orch`), so any scheduler can resume
 * the run when its coordinator is gone.
 * - GATE: the files are being distributed (created with the state); `gate_deadline` bounds it.
 * - RUNNING: batch `batch` was (or is being) sent; its nodes are awaited. Entered from GATE for
 *   batch 0 and from SLEEPING for the next one, each by a 'send' transition that CancelRun's flag
 *   refuses. After the last batch the run stays RUNNING until every node is final.
 * - SLEEPING: batch `batch` is done; batch `batch + 1` starts at `sleep_until`.
 * The state is deleted when the run ends (every node final, the gate failed, or cancelled).
 */
export type RunPhase = 'GATE' | 'RUNNING' | 'SLEEPING';

/** A run's orchestration state as stored. */
export interface OrchestrationState {
  taskId: string;
  phase: RunPhase;
  /** The fencing epoch: 1 at creation, one more at each takeover. */
  epoch: number;
  /** The replica id of the coordinator. */
  coordinator: string;
  /** The current batch (0-based); -1 in GATE. */
  batch: number;
  /** How many batches the run has. */
  batches: number;
  /** Nodes per batch (the last may have fewer). */
  batchSize: number;
  /** Pause between a batch's end and the next batch, in ms. */
  sleepMs: number;
  /** When the next batch starts, in ms since the epoch (SLEEPING). */
  sleepUntilMs: number;
  /** When the gate gives up on nodes that did not answer, in ms since the epoch (GATE). */
  gateDeadlineMs: number;
  /** True once CancelRun set the flag. */
  cancelled: boolean;
  /** True while the coordinator hands batch `batch`'s run commands out. */
  sending: boolean;
}

/** What a new run's state starts from. */
export interface NewRunState {
  taskId: string;
  /** The nodes the run command goes to, in batch order. */
  plan: string[];
  batchSize: number;
  batches: number;
  sleepMs: number;
  gateDeadlineMs: number;
  command: RunCommand;
}

/** What CancelRun learns when it sets the flag. */
export interface CancelPoint {
  phase: RunPhase;
  batch: number;
  sending: boolean;
  batchSize: number;
  /** The run's plan (nodes in batch order). */
  plan: string[];
}

/** Outcome of a transition: done, refused because the run is cancelled, or fenced (the run has another coordinator). */
export type TransitionOutcome = 'ok' | 'cancelled' | 'fenced';

/** The nodes of batches 0..`last` of a plan cut in batches of `batchSize`. */
export function nodesThroughBatch(plan: readonly string[], batchSize: number, last: number): string[] {
  return last < 0 ? [] : plan.slice(0, Math.min(plan.length, (last + 1) * batchSize));
}

/** Batch `k` of a plan cut in batches of `batchSize`. */
export function batchOf(plan: readonly string[], batchSize: number, k: number): string[] {
  return plan.slice(k * batchSize, (k + 1) * batchSize);
}

function fields(values: Record<string, string | number>): string[] {
  return Object.entries(values).flatMap(([k, v]) => [k, String(v)]);
}

/**
 * Runs' orchestration state in Redis (keys in lib/redis.ts; scripts in run-state-scripts.ts):
 * phase, batch, deadlines, cancel flag, the coordinator lease with its fencing epoch, the plan
 * and the command, and the set of active runs a scheduler scans for runs whose coordinator is
 * gone.
 */
export class RunStateStore {
  private readonly replica: () => string;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    /**
     * This replica's id, written as the coordinator of the runs it coordinates: the id of its
     * replica lease (`<name>-<epoch>`), read at each write since a replica that lost its lease
     * comes back under a new one.
     */
    replicaId: string | (() => string),
    /** Time to live of a coordinator lease, in ms. */
    readonly leaseMs: number,
    /**
     * The connection lease renewals go on; default `redis`. One of their own keeps them from
     * queueing behind the replica's other commands (index writes, dispatch) while Redis is busy.
     */
    private readonly renewalRedis: Redis = redis,
  ) {
    this.replica = typeof replicaId === 'string' ? () => replicaId : replicaId;
  }

  /** The replica id written as the coordinator now. */
  get replicaId(): string {
    return this.replica();
  }

  private runKeys(taskId: string): string[] {
    const k = this.keys;
    return [k.runOrchestration(taskId), k.runLease(taskId), k.runPlan(taskId), k.runCommand(taskId)];
  }

  /** Creates a run's state in GATE with this replica as coordinator (epoch 1), listed as active first. */
  async begin(run: NewRunState): Promise<OrchestrationState> {
    // Listed before the state exists: an entry without state is dropped by the scan, a state
    // without an entry would never be found.
    await this.redis.zadd(this.keys.activeRuns(), Date.now(), run.taskId);
    const values = {
      phase: 'GATE',
      batch: -1,
      batches: run.batches,
      batch_size: run.batchSize,
      sleep_ms: run.sleepMs,
      sleep_until: 0,
      gate_deadline: run.gateDeadlineMs,
      cancel: '0',
      sending: '0',
    };
    const coordinator = this.replicaId;
    const created = await BEGIN_RUN_STATE_SCRIPT.run(this.redis, this.runKeys(run.taskId), [
      coordinator,
      this.leaseMs,
      JSON.stringify(run.plan),
      JSON.stringify(RunCommand.toJSON(run.command)),
      ...fields(values),
    ]);
    if (created !== 1) throw new Error(`run ${run.taskId} has orchestration state already`);
    return {
      taskId: run.taskId,
      phase: 'GATE',
      epoch: 1,
      coordinator,
      batch: -1,
      batches: run.batches,
      batchSize: run.batchSize,
      sleepMs: run.sleepMs,
      sleepUntilMs: 0,
      gateDeadlineMs: run.gateDeadlineMs,
      cancelled: false,
      sending: false,
    };
  }

  /** Changes the state as its coordinator at `epoch` (renewing the lease); 'send' changes are refused after a cancel. */
  async transition(taskId: string, epoch: number, kind: 'send' | 'keep', values: Record<string, string | number>): Promise<TransitionOutcome> {
    const k = this.keys;
    const r = await TRANSITION_RUN_STATE_SCRIPT.run(
      this.redis,
      [k.runOrchestration(taskId), k.runLease(taskId)],
      [epoch, this.replicaId, this.leaseMs, kind, ...fields(values)],
    );
    return r === 1 ? 'ok' : r === -1 ? 'cancelled' : 'fenced';
  }

  /** Renews the lease at `epoch`: undefined when fenced, else whether the run was cancelled. */
  async renew(taskId: string, epoch: number): Promise<{ cancelled: boolean } | undefined> {
    const k = this.keys;
    const [ok, cancelled] = (await RENEW_RUN_LEASE_SCRIPT.run(
      this.renewalRedis,
      [k.runOrchestration(taskId), k.runLease(taskId)],
      [epoch, this.replicaId, this.leaseMs],
    )) as number[];
    return ok === 1 ? { cancelled: cancelled === 1 } : undefined;
  }

  /**
   * Takes a run over when its lease lapsed: the state with the new epoch, its plan and command;
   * 'held' while another coordinator holds the lease; 'gone' when the run has no state (its
   * entry in the active set is removed).
   */
  async takeOver(taskId: string): Promise<{ state: OrchestrationState; plan: string[]; command: RunCommand } | 'held' | 'gone'> {
    const k = this.keys;
    const r = (await TAKE_OVER_RUN_SCRIPT.run(this.redis, [k.runOrchestration(taskId), k.runLease(taskId)], [this.replicaId, this.leaseMs])) as number[];
    if (r[0] === 0) return 'held';
    if (r[0] === 1) {
      const [hash, plan, command] = await Promise.all([
        this.redis.hgetall(k.runOrchestration(taskId)),
        this.redis.get(k.runPlan(taskId)),
        this.redis.get(k.runCommand(taskId)),
      ]);
      if (plan !== null && command !== null) {
        return { state: parseState(taskId, hash), plan: JSON.parse(plan) as string[], command: RunCommand.fromJSON(JSON.parse(command)) };
      }
      // A state without plan or command cannot be resumed: remove it as its coordinator.
      await this.finish(taskId, r[1]);
      return 'gone';
    }
    await this.redis.zrem(k.activeRuns(), taskId);
    return 'gone';
  }

  /** Lets the lease lapse now (this replica stops; another takes the run over at once), unless fenced. */
  async release(taskId: string, epoch: number): Promise<void> {
    const k = this.keys;
    // On the renewals' connection, after any renewal still on its way: one run after the release
    // would take the lease again, and the run would wait for it to lapse.
    await RELEASE_RUN_LEASE_SCRIPT.run(this.renewalRedis, [k.runOrchestration(taskId), k.runLease(taskId)], [epoch]);
  }

  /** Sets the cancel flag; undefined when the run has no state (not coordinated, or over). */
  async cancel(taskId: string): Promise<CancelPoint | undefined> {
    const r = (await CANCEL_RUN_STATE_SCRIPT.run(this.redis, [this.keys.runOrchestration(taskId), this.keys.runPlan(taskId)], [])) as Array<string | null>;
    if (r.length === 0) return undefined;
    const plan = r[4] ? (JSON.parse(r[4]) as string[]) : [];
    return { phase: (r[0] ?? 'GATE') as RunPhase, batch: Number(r[1] ?? -1), sending: r[2] === '1', batchSize: Number(r[3] ?? 1), plan };
  }

  /** The state as stored, or undefined. */
  async load(taskId: string): Promise<OrchestrationState | undefined> {
    const hash = await this.redis.hgetall(this.keys.runOrchestration(taskId));
    return hash.epoch === undefined ? undefined : parseState(taskId, hash);
  }

  /** The run's plan (nodes in batch order), or undefined without state. */
  async plan(taskId: string): Promise<string[] | undefined> {
    const plan = await this.redis.get(this.keys.runPlan(taskId));
    return plan === null ? undefined : (JSON.parse(plan) as string[]);
  }

  /** Removes the run's state as its coordinator at `epoch`, and its entry in the active set; false when fenced. */
  async finish(taskId: string, epoch: number): Promise<boolean> {
    const removed = await FINISH_RUN_STATE_SCRIPT.run(this.redis, this.runKeys(taskId), [epoch]);
    if (removed !== 1) return false;
    await this.redis.zrem(this.keys.activeRuns(), taskId);
    return true;
  }

  /** Task ids of the runs with orchestration state, oldest first. */
  async active(): Promise<string[]> {
    return this.redis.zrange(this.keys.activeRuns(), 0, -1);
  }
}

function parseState(taskId: string, h: Record<string, string>): OrchestrationState {
  return {
    taskId,
    phase: (h.phase ?? 'GATE') as RunPhase,
    epoch: Number(h.epoch),
    coordinator: h.coordinator ?? '',
    batch: Number(h.batch ?? -1),
    batches: Number(h.batches ?? 1),
    batchSize: Number(h.batch_size ?? 1),
    sleepMs: Number(h.sleep_ms ?? 0),
    sleepUntilMs: Number(h.sleep_until ?? 0),
    gateDeadlineMs: Number(h.gate_deadline ?? 0),
    cancelled: h.cancel === '1',
    sending: h.sending === '1',
  };
}
