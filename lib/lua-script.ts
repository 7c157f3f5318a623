import { createHash } from 'node:crypto';
import type Redis from 'ioredis';

/**
 * A Redis Lua script run by its SHA1 (EVALSHA), loaded with EVAL the first time and again
 * whenever Redis answers NOSCRIPT (after a Redis restart or SCRIPT FLUSH).
 */
export class LuaScript {
  /** SHA1 of the source, as Redis names the script. */
  readonly sha: string;

  constructor(
    /** Name used in error messages. */
    readonly name: string,
    /** The Lua source, opening with its header comment. */
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /** Runs the script with `keys` as KEYS and `args` as ARGV and returns its reply. */
  async run(redis: Redis, keys: string[], args: Array<string | number>): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.eval(this.source, keys.length, ...keys, ...args);
    }
  }

  /** As `run`, with every bulk string of the reply as a Buffer (binary-safe: bitmaps, for example). */
  async runBuffer(redis: Redis, keys: string[], args: Array<string | number>): Promise<unknown> {
    try {
      return await redis.callBuffer('EVALSHA', this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.callBuffer('EVAL', this.source, keys.length, ...keys, ...args);
    }
  }
}
