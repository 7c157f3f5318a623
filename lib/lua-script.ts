import { createHash } from 'node:crypto';
import { Command, type default as Redis } from 'ioredis';

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
    return this.send(redis, keys, args, 'utf8');
  }

  /** As `run`, with every bulk string of the reply as a Buffer (binary-safe: bitmaps, for example). */
  async runBuffer(redis: Redis, keys: string[], args: Array<string | number>): Promise<unknown> {
    return this.send(redis, keys, args, null);
  }

  /**
   * EVALSHA, then EVAL on NOSCRIPT. The command is built from one array, never spread into a
   * call (`redis.evalsha(sha, n, ...args)`): a 100,000-node CreateRun has 300,000 arguments,
   * more than a call's stack takes.
   */
  private async send(redis: Redis, keys: string[], args: Array<string | number>, replyEncoding: BufferEncoding | null): Promise<unknown> {
    const rest = [keys.length, ...keys, ...args];
    try {
      return await redis.sendCommand(new Command('evalsha', [this.sha, ...rest], { replyEncoding }));
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.sendCommand(new Command('eval', [this.source, ...rest], { replyEncoding }));
    }
  }
}
