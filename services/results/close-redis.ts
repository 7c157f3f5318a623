import type Redis from 'ioredis';

/** How long `closeRedis` waits for a polite QUIT before dropping the connection, in ms. */
export const REDIS_QUIT_TIMEOUT_MS = 1_000;

/**
 * Closes a client after a drain: QUIT (pending replies arrive first), or a plain disconnect
 * when Redis does not answer in time (it may be the reason we are stopping).
 */
export async function closeRedis(redis: Redis, timeoutMs = REDIS_QUIT_TIMEOUT_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  await Promise.race([redis.quit().catch(() => undefined), timedOut]);
  clearTimeout(timer);
  redis.disconnect();
}
