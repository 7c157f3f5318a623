import type { RedisClient as Redis } from '../../lib/redis-client';
import { LuaScript } from '../../lib/lua-script';
import type { RedisKeys } from '../../lib/redis';

/** How long a RunTask request id is remembered, in seconds (24 h; scheduler_service.proto). */
export const REQUEST_ID_TTL_S = 24 * 60 * 60;

/** Gives a request id back only while it still names the run (a newer claim is left alone). */
const RELEASE_SCRIPT = LuaScript.fromFile(__dirname, 'release-request-id-1');

/**
 * RunTask idempotency (a retry after a lost answer must not start a second run): which task id a
 * caller's request id started, in Redis (`RedisKeys.runRequest`) so that every scheduler replica
 * and a restarted scheduler agree. Choria has nothing like it: a retried `mco tasks run` always
 * starts a second run.
 */
export class RunRequests {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly ttlS = REQUEST_ID_TTL_S,
  ) {}

  /**
   * Takes `requestId` for `taskId` unless the caller used it already. Returns undefined when
   * taken (this call starts the run), or the task id the first request started. One SET NX GET
   * (Redis 7): of concurrent duplicates exactly one gets undefined, whatever the interleaving.
   */
  async claim(caller: string, requestId: string, taskId: string): Promise<string | undefined> {
    const previous = await this.redis.set(this.keys.runRequest(caller, requestId), taskId, 'EX', this.ttlS, 'NX', 'GET');
    return previous ?? undefined;
  }

  /**
   * Gives a request id back when its run could not be created, so a retry may start one; only
   * while it still names `taskId` (a later claim is left alone).
   */
  async release(caller: string, requestId: string, taskId: string): Promise<void> {
    await RELEASE_SCRIPT.run(this.redis, [this.keys.runRequest(caller, requestId)], [taskId]);
  }
}
