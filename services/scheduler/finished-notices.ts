import { execPerKey, throwFirstError, type RedisClient as Redis } from '../../lib/redis-client';
import type { Logger } from '../../lib/logger';
import type { RedisKeys } from '../../lib/redis';
import { errorText } from './error-text';

/** How long notices are gathered before they are posted, in ms (one entry per run per flush). */
const FLUSH_MS = 50;
/** How long a run's notices are kept, in ms: an hour, as the run's dispatch replies. */
const NOTICES_TTL_MS = 60 * 60 * 1000;
/** Entries read per poll. */
const READ_COUNT = 1_000;

/**
 * Tells a run's coordinator which of its nodes finished on other replicas. An agent reports its
 * result to the replica holding its stream, which stores it in the results service; when that
 * replica does not coordinate the run, the coordinator would only learn of it at its periodic
 * status read, and a batched run would wait that long between batches. So such a replica posts
 * the nodes, once their results are stored, to the run's `finished` stream (one entry per run
 * every FLUSH_MS), which the coordinator polls (`read`). A notice is a hint: the results
 * service holds the results.
 */
export class FinishedNotices {
  private readonly pending = new Map<string, Set<string>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly log: Logger,
  ) {}

  /** Notes that `host`'s final result for run `taskId` is stored. */
  add(taskId: string, host: string): void {
    let hosts = this.pending.get(taskId);
    if (!hosts) this.pending.set(taskId, (hosts = new Set()));
    hosts.add(host);
    if (this.timer) return;
    this.timer = setTimeout(() => void this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  /** Posts what was noted; failures are logged (the coordinator's status read covers them). */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size === 0) return;
    const pending = [...this.pending].map(([taskId, hosts]) => ({ stream: this.keys.runFinished(taskId), hosts }));
    this.pending.clear();
    try {
      throwFirstError(
        await execPerKey(
          this.redis,
          pending,
          (p) => p.stream,
          (pipeline, p) => pipeline.xadd(p.stream, '*', 'n', [...p.hosts].join(',')).pexpire(p.stream, NOTICES_TTL_MS),
        ),
      );
    } catch (err) {
      this.log.warn({ err: errorText(err) }, 'could not tell coordinators of results stored here');
    }
  }

  /** The nodes posted for run `taskId` after entry `after` ('0-0' for all), and the last entry read. */
  async read(taskId: string, after: string): Promise<{ nodes: string[]; last: string }> {
    const read = await this.redis.xread('COUNT', READ_COUNT, 'STREAMS', this.keys.runFinished(taskId), after);
    const nodes: string[] = [];
    let last = after;
    for (const [, entries] of read ?? []) {
      for (const [id, fields] of entries) {
        last = id;
        if (fields[0] === 'n' && fields[1]) nodes.push(...fields[1].split(','));
      }
    }
    return { nodes, last };
  }
}
