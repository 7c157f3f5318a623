import type { RedisClient as Redis } from '../../lib/redis-client';
import { BatonError, UnavailableError } from '../../lib/errors';

/**
 * Turning "Redis is down" into UNAVAILABLE, the retryable gRPC status, with a one-line message,
 * instead of INTERNAL or a call that hangs until its deadline.
 */

/** How long a call waits for a (re)connecting Redis before answering UNAVAILABLE, in ms. */
export const REDIS_READY_WAIT_MS = 1_000;

/** Errors Redis itself answered (a script or command error): a bug, not an outage. */
function isRedisReply(err: unknown): boolean {
  return err instanceof Error && err.name === 'ReplyError';
}

/** The first line of an error's message. */
function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0];
}

/**
 * Maps an error thrown while talking to Redis: Baton errors and Redis replies pass unchanged,
 * anything else (connection refused, closed, retries exhausted) becomes UnavailableError.
 */
export function asUnavailable(err: unknown): unknown {
  if (err instanceof BatonError || isRedisReply(err)) return err;
  return new UnavailableError(`redis is unavailable: ${firstLine(err)}`);
}

/** Tracks the last connection error of a client, to name it when Redis is unavailable. */
export class RedisAvailability {
  private lastError = '';
  private waiting: Promise<boolean> | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly waitMs = REDIS_READY_WAIT_MS,
  ) {
    redis.on('error', (err: Error) => {
      this.lastError = firstLine(err);
    });
  }

  /**
   * Resolves once the client is connected, waiting up to `waitMs` for a (re)connect; throws
   * UnavailableError otherwise. Without it a command would sit in ioredis's offline queue
   * through all its retries (several seconds), outliving the caller's deadline.
   */
  async ready(): Promise<void> {
    if (this.redis.status === 'ready') return;
    const status = this.redis.status;
    if (status !== 'end' && status !== 'close' && (await this.waitForReady())) return;
    throw new UnavailableError(`redis is unavailable (${this.redis.status})${this.lastError ? `: ${this.lastError}` : ''}`);
  }

  /** One shared wait for 'ready', however many calls arrive during an outage. */
  private waitForReady(): Promise<boolean> {
    this.waiting ??= new Promise<boolean>((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.redis.off('ready', onReady);
        this.waiting = undefined;
        resolve(ok);
      };
      const onReady = () => done(true);
      const timer = setTimeout(() => done(false), this.waitMs);
      this.redis.on('ready', onReady);
    });
    return this.waiting;
  }
}
