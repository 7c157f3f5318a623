import { status } from '@grpc/grpc-js';
import type { NodeResult } from '../../gen/baton/v1/run';
import type { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { UnavailableError, isServiceError } from '../../lib/errors';
import { DEFAULT_DEADLINE_MS, unary } from '../../lib/grpc-client';
import { isFinalNodeState } from '../../lib/run-states';

/**
 * Status codes of RecordNodeResults after which sending the same results again cannot help: the
 * run does not exist (NOT_FOUND), or the results service refuses a result as malformed or not
 * of the run (INVALID_ARGUMENT, FAILED_PRECONDITION). Any other failure (UNAVAILABLE,
 * DEADLINE_EXCEEDED, INTERNAL, ...) may pass on a later attempt.
 */
export const PERMANENT_REJECTIONS: ReadonlySet<status> = new Set([status.NOT_FOUND, status.INVALID_ARGUMENT, status.FAILED_PRECONDITION]);

/** Results per RecordNodeResults call at most. */
export const RESULT_BATCH_MAX = 500;
/**
 * Estimated bytes per RecordNodeResults call at most, well under what a server accepts
 * (lib/grpc-server.ts, 16 MiB); a single larger result (a node that printed a lot) goes alone.
 */
export const RESULT_BATCH_MAX_BYTES = 4 * 1024 * 1024;
/**
 * How long the first result of a run waits for others before its batch is sent, in ms. A
 * fleet's results come spread over the seconds its tasks take, not together, and the more a
 * busy machine spreads them the more calls a short linger makes, each costing the scheduler, the
 * results service and Redis a call's work besides its results'. This one gathers tens per call
 * at a few hundred results a second, and is short against what a result's acknowledgement (the
 * agent keeps the result until then) or its display to a person waits for anyway. Not waited
 * when no other node of the run is still to report (ResultBatcher), so a run's last results, and
 * so its end, never wait for it.
 */
export const RESULT_BATCH_LINGER_MS = 200;
/**
 * How long a result that is not final (a TaskStarted's RUNNING, an away note) waits before it
 * joins its run's queue, in ms. When the node's final result arrives meanwhile it replaces the
 * held one, which is never sent: a task that ends within this time is recorded with one write
 * instead of two, at the cost of its RUNNING showing this much later for a task that runs
 * longer. 0 queues every result at once.
 */
export const PROGRESS_HOLD_MS = 50;
/** Batches of one run in flight at once: one being stored while the next is sent. */
export const RESULT_BATCHES_IN_FLIGHT = 2;
/**
 * Results held (deferred, waiting or in flight), over all runs, at most; a result beyond fails at once as
 * UNAVAILABLE (a final one is re-sent by its session after a delay, agent-session.ts), so a
 * results service slower than the fleet never grows the scheduler without bound.
 */
export const RESULT_QUEUE_MAX = 100_000;
/** Estimated bytes of the results held, over all runs, at most (as RESULT_QUEUE_MAX). */
export const RESULT_QUEUE_MAX_BYTES = 256 * 1024 * 1024;

/** Options of a ResultBatcher; every one has a default. */
export interface ResultBatcherOptions {
  /** Results per call at most; default RESULT_BATCH_MAX. */
  maxResults?: number;
  /** Estimated bytes per call at most; default RESULT_BATCH_MAX_BYTES. */
  maxBytes?: number;
  /** Wait for more results of a run before sending, in ms; default RESULT_BATCH_LINGER_MS. */
  lingerMs?: number;
  /** Wait of a result that is not final before it is queued, in ms; default PROGRESS_HOLD_MS. */
  progressHoldMs?: number;
  /** Batches of one run in flight at once; default RESULT_BATCHES_IN_FLIGHT. */
  inFlight?: number;
  /** Results held (deferred, waiting or in flight) over all runs at most; default RESULT_QUEUE_MAX. */
  maxQueued?: number;
  /** Estimated bytes held over all runs at most; default RESULT_QUEUE_MAX_BYTES. */
  maxQueuedBytes?: number;
  /** Deadline of one RecordNodeResults call, in ms; default DEFAULT_DEADLINE_MS. */
  deadlineMs?: number;
}

/** ResultBatcherOptions with every default applied. */
export type ResolvedResultBatcherOptions = Required<ResultBatcherOptions>;

/** Applies the defaults; throws when a value is not a positive number. */
export function resolveResultBatcherOptions(options: ResultBatcherOptions = {}): ResolvedResultBatcherOptions {
  const resolved: ResolvedResultBatcherOptions = {
    maxResults: options.maxResults ?? RESULT_BATCH_MAX,
    maxBytes: options.maxBytes ?? RESULT_BATCH_MAX_BYTES,
    lingerMs: options.lingerMs ?? RESULT_BATCH_LINGER_MS,
    progressHoldMs: options.progressHoldMs ?? PROGRESS_HOLD_MS,
    inFlight: options.inFlight ?? RESULT_BATCHES_IN_FLIGHT,
    maxQueued: options.maxQueued ?? RESULT_QUEUE_MAX,
    maxQueuedBytes: options.maxQueuedBytes ?? RESULT_QUEUE_MAX_BYTES,
    deadlineMs: options.deadlineMs ?? DEFAULT_DEADLINE_MS,
  };
  for (const [name, value] of Object.entries(resolved)) {
    if (!Number.isFinite(value) || value < (name === 'lingerMs' || name === 'progressHoldMs' ? 0 : 1))
      throw new Error(`result batcher option ${name} is ${value}; expected a positive number`);
  }
  return resolved;
}

/** What became of a result: stored, or refused for good by the results service (why, in `reason`). */
export type RecordOutcome = { stored: true } | { stored: false; reason: string };

const STORED: RecordOutcome = { stored: true };

/** A result waiting for its batch, and whoever waits for its outcome. */
interface Pending {
  result: NodeResult;
  bytes: number;
  /** While the result is deferred (not final, not queued yet): when it joins the queue, in ms since the epoch. */
  deferredUntilMs?: number;
  /** One per record() call: more than one when later results of the node replaced this one before it was sent. */
  waiters: Array<{ resolve: (outcome: RecordOutcome) => void; reject: (err: unknown) => void }>;
}

/** One run's results: queued in arrival order, and the nodes in batches being sent. */
interface RunQueue {
  taskId: string;
  queued: Pending[];
  /**
   * Index of the first result of `queued` still waiting: a batch taken from the front moves it
   * on instead of copying what is left, which at a run of 100,000 nodes is most of the queue.
   */
  head: number;
  bytes: number;
  /** Per node, its last deferred or queued result, while it is not final (a later one of the node replaces it in place). */
  open: Map<string, Pending>;
  /** Results not final that wait for their hold to end before they are queued, per node, in the order they arrived (and so of their hold's end). */
  deferred: Map<string, Pending>;
  /** The timer that queues deferred results, while one runs. */
  deferTimer?: NodeJS.Timeout;
  /** Nodes with a result in a batch in flight: their next results wait, so a node's results land in order. */
  sending: Set<string>;
  inFlight: number;
  /** The linger timer, while one runs. */
  timer?: NodeJS.Timeout;
  /** True once the queue's first result has waited its linger: send as soon as a batch may go. */
  due: boolean;
}

/**
 * How many nodes of run `taskId` have no final result stored yet, when this scheduler tracks the
 * run (run-tracker.ts); undefined when it does not (a run coordinated by another replica).
 */
export type UnfinishedNodes = (taskId: string) => number | undefined;

/** How many results of the run wait to be sent. */
function waiting(q: RunQueue): number {
  return q.queued.length - q.head;
}

/**
 * A result's size as sent, roughly: its output counted twice (the value parsed from stdout
 * usually repeats it) and a fixed amount for the other fields. Exact sizes would mean encoding
 * every result twice.
 */
function estimateBytes(r: NodeResult): number {
  return 256 + r.host.length + 2 * r.stdout.length + r.stderr.length + r.statusmsg.length;
}

/**
 * Sends node results to the results service in batches per run: a run's results are sent
 * together once RESULT_BATCH_MAX of them wait or the first has waited RESULT_BATCH_LINGER_MS,
 * or at once when every node the run still waits for has a result waiting or in flight: no
 * other result could join the batch, so a run's last results (all of a one-node run's) wait
 * for nothing. Each `record` still learns its own result's outcome. A node's results of one run are sent in
 * the order recorded, never two in one call and never one while an earlier one is in flight;
 * a result that is not final (progress: a TaskStarted's RUNNING, an away note) waits
 * PROGRESS_HOLD_MS before it is queued, and a result replaces the node's previous one while
 * that one is deferred or queued and not final, as the results service would replace it: a
 * task whose TaskFinished follows its TaskStarted within the hold is recorded once, as its
 * final result, and its RUNNING is never stored. A batch the results service refuses for good (a malformed
 * result, a node not in the run) is split in halves and each sent again, so only the results
 * that cause the refusal are refused; a run it does not know (NOT_FOUND) refuses every result.
 * Any other failure fails every result of the batch: nothing is stored twice by trying again,
 * since the results service is idempotent for identical results.
 */
export class ResultBatcher {
  private readonly options: ResolvedResultBatcherOptions;
  private readonly runs = new Map<string, RunQueue>();
  /** Results deferred, queued or in flight, and their estimated bytes. */
  private heldCount = 0;
  private heldBytes = 0;
  /** Batches being sent (for `flush`). */
  private readonly sends = new Set<Promise<void>>();

  constructor(
    private readonly results: ResultsServiceClient,
    options: ResultBatcherOptions = {},
    /** How many nodes of a run are not final yet; default: unknown for every run (each waits its linger). */
    private readonly unfinished: UnfinishedNodes = () => undefined,
  ) {
    this.options = resolveResultBatcherOptions(options);
  }

  /**
   * Queues a result of run `result.taskId` (a task id, checked by the caller); resolves once it
   * is stored or refused for good, rejects when the results service could not take it (the
   * caller may try again).
   */
  record(result: NodeResult): Promise<RecordOutcome> {
    const bytes = estimateBytes(result);
    if (this.heldCount >= this.options.maxQueued || (this.heldCount > 0 && this.heldBytes + bytes > this.options.maxQueuedBytes)) {
      return Promise.reject(new UnavailableError(`${this.heldCount} results wait for the results service already; try again later`));
    }
    return new Promise((resolve, reject) => {
      let q = this.runs.get(result.taskId);
      if (!q) {
        q = { taskId: result.taskId, queued: [], head: 0, bytes: 0, open: new Map(), deferred: new Map(), sending: new Set(), inFlight: 0, due: false };
        this.runs.set(result.taskId, q);
      }
      const final = isFinalNodeState(result.state);
      const previous = q.open.get(result.host);
      if (previous) {
        this.adjust(q, previous, bytes - previous.bytes);
        previous.result = result;
        previous.waiters.push({ resolve, reject });
        // A final result does not wait for the hold of the progress it replaces.
        if (final && previous.deferredUntilMs !== undefined) this.release(q, previous);
      } else {
        const pending: Pending = { result, bytes: 0, waiters: [{ resolve, reject }] };
        this.heldCount++;
        if (!final) q.open.set(result.host, pending);
        if (final || this.options.progressHoldMs === 0) q.queued.push(pending);
        else this.defer(q, pending);
        this.adjust(q, pending, bytes);
      }
      if (final) q.open.delete(result.host);
      this.pump(q);
    });
  }

  /** Sends every deferred and queued result now and resolves once nothing is deferred, queued or in flight (on shutdown). */
  async flush(): Promise<void> {
    while (this.runs.size > 0) {
      for (const q of this.runs.values()) {
        for (const p of q.deferred.values()) this.release(q, p);
        q.due = true;
        this.pump(q);
      }
      await Promise.allSettled([...this.sends]);
    }
  }

  /** Defers a result that is not final until its hold ends (PROGRESS_HOLD_MS). */
  private defer(q: RunQueue, p: Pending): void {
    p.deferredUntilMs = Date.now() + this.options.progressHoldMs;
    q.deferred.set(p.result.host, p);
    q.deferTimer ??= this.armDeferTimer(q, this.options.progressHoldMs);
  }

  /** Moves a deferred result to the end of its run's queue. */
  private release(q: RunQueue, p: Pending): void {
    p.deferredUntilMs = undefined;
    q.deferred.delete(p.result.host);
    q.queued.push(p);
    q.bytes += p.bytes;
  }

  /** A timer that queues the deferred results whose hold has ended, and waits again for the next. */
  private armDeferTimer(q: RunQueue, delayMs: number): NodeJS.Timeout {
    return setTimeout(() => {
      q.deferTimer = undefined;
      const now = Date.now();
      for (const p of q.deferred.values()) {
        // Deferred in arrival order with one hold for all: the first still deferred ends first.
        const leftMs = (p.deferredUntilMs ?? now) - now;
        if (leftMs > 0) {
          q.deferTimer = this.armDeferTimer(q, leftMs);
          break;
        }
        this.release(q, p);
      }
      this.pump(q);
    }, delayMs);
  }

  /** Adds `bytes` to the estimated size of `p`, which is deferred or queued. */
  private adjust(q: RunQueue, p: Pending, bytes: number): void {
    p.bytes += bytes;
    if (p.deferredUntilMs === undefined) q.bytes += bytes;
    this.heldBytes += bytes;
  }

  /** Sends what may go now; arms the linger timer for what must wait. */
  private pump(q: RunQueue): void {
    const { maxResults, maxBytes, inFlight, lingerMs } = this.options;
    while (waiting(q) > 0 && q.inFlight < inFlight) {
      if (!q.due && waiting(q) < maxResults && q.bytes < maxBytes && !this.nothingMoreExpected(q)) {
        q.timer ??= setTimeout(() => {
          q.timer = undefined;
          q.due = true;
          this.pump(q);
        }, lingerMs);
        return;
      }
      const batch = this.take(q);
      if (batch.length === 0) return; // every queued node has a result in flight: sent when it lands
      q.inFlight++;
      for (const p of batch) q.sending.add(p.result.host);
      const sent = this.send(q.taskId, batch).finally(() => {
        this.sends.delete(sent);
        q.inFlight--;
        this.heldCount -= batch.length;
        for (const p of batch) {
          q.sending.delete(p.result.host);
          this.heldBytes -= p.bytes;
        }
        this.pump(q);
      });
      this.sends.add(sent);
    }
    if (waiting(q) === 0) {
      q.queued = [];
      q.head = 0;
      q.due = false;
      clearTimeout(q.timer);
      q.timer = undefined;
      if (q.inFlight === 0 && q.deferred.size === 0) {
        clearTimeout(q.deferTimer);
        q.deferTimer = undefined;
        this.runs.delete(q.taskId);
      }
    }
  }

  /**
   * True when every node of the run without a final result has one waiting or in flight here: a
   * linger could gather no other result. A node counted twice (one result in flight, the next
   * waiting) only makes a batch go sooner.
   */
  private nothingMoreExpected(q: RunQueue): boolean {
    const unfinished = this.unfinished(q.taskId);
    return unfinished !== undefined && waiting(q) + q.sending.size >= unfinished;
  }

  /**
   * The next batch: queued results in order, at most maxResults and maxBytes (a first one always
   * goes), each node at most once and none of a node with a result in flight.
   */
  private take(q: RunQueue): Pending[] {
    const { maxResults, maxBytes } = this.options;
    const batch: Pending[] = [];
    const left: Pending[] = [];
    const passed = new Set<string>();
    let bytes = 0;
    let i = q.head;
    for (; i < q.queued.length && batch.length < maxResults; i++) {
      const p = q.queued[i];
      const host = p.result.host;
      if (q.sending.has(host) || passed.has(host)) {
        left.push(p);
        passed.add(host); // a later result of this node must not overtake this one
        continue;
      }
      if (batch.length > 0 && bytes + p.bytes > maxBytes) break; // full: the rest waits in order
      batch.push(p);
      bytes += p.bytes;
      if (q.open.get(host) === p) q.open.delete(host);
      passed.add(host);
    }
    // The results passed over go back in front of the rest, in order, into slots just taken.
    q.head = i - left.length;
    for (let k = 0; k < left.length; k++) q.queued[q.head + k] = left[k];
    // Compacted once most of the array is behind the head: each result is copied O(1) times.
    if (q.head > 1024 && q.head * 2 > q.queued.length) {
      q.queued = q.queued.slice(q.head);
      q.head = 0;
    }
    q.bytes -= bytes; // still held (heldBytes) until the batch lands
    return batch;
  }

  private async send(taskId: string, batch: Pending[]): Promise<void> {
    try {
      await unary(this.results, this.results.recordNodeResults, { taskId, results: batch.map((p) => p.result) }, { deadlineMs: this.options.deadlineMs });
    } catch (err) {
      if (!isServiceError(err) || !PERMANENT_REJECTIONS.has(err.code)) {
        for (const p of batch) for (const w of p.waiters) w.reject(err);
        return;
      }
      if (batch.length > 1 && err.code !== status.NOT_FOUND) {
        // Which results caused the refusal is not said in a form to rely on: halves, in order.
        const half = batch.length >> 1;
        await this.send(taskId, batch.slice(0, half));
        await this.send(taskId, batch.slice(half));
        return;
      }
      const refused: RecordOutcome = { stored: false, reason: err.details };
      for (const p of batch) for (const w of p.waiters) w.resolve(refused);
      return;
    }
    for (const p of batch) for (const w of p.waiters) w.resolve(STORED);
  }
}
