import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'ioredis';
import { dataNodes, throwFirstError, type RedisClient } from './redis-client';

/** Every script this process defined, so that each Redis connection can load them as it opens. */
const DEFINED: LuaScript[] = [];

/**
 * Loads every defined script into the Redis behind `redis` (SCRIPT LOAD, in one pipeline; on a
 * Cluster into every master, since each keeps its own script cache), so that the first EVALSHA
 * of each finds it: a NOSCRIPT answer would otherwise show as a failed call (and an error span)
 * in a run that succeeded. lib/redis.ts calls it on every 'ready', which is also after a Redis
 * restart emptied the script cache.
 */
export async function loadScripts(redis: RedisClient): Promise<void> {
  if (DEFINED.length === 0) return;
  await Promise.all(
    dataNodes(redis).map(async (node) => {
      const pipeline = node.pipeline();
      for (const script of DEFINED) pipeline.script('LOAD', script.source);
      throwFirstError((await pipeline.exec()) ?? []);
    }),
  );
}

/**
 * A Redis Lua script run by its SHA1 (EVALSHA). Loaded when a connection opens (loadScripts),
 * and with EVAL whenever Redis still answers NOSCRIPT (a command queued while Redis restarted,
 * or SCRIPT FLUSH).
 */
export class LuaScript {
  /**
   * The script in `<dir>/<name>.lua`, read once when the module defining it loads: call it with
   * `__dirname`, so the file sits next to the module in the sources and, copied there by
   * scripts/build.mjs, in dist/. The name says what the script does and how many keys it takes
   * (`record-results-6`; `touch-nodes-2plus` for two keys and then a number that varies per
   * call, one per node); the file opens with its header (purpose, each KEYS[i] and ARGV[i],
   * the result), which `npm run lint` checks, with luacheck, for every `.lua` file.
   */
  static fromFile(dir: string, name: string): LuaScript {
    return new LuaScript(name, readFileSync(join(dir, `${name}.lua`), 'utf8'));
  }

  /** SHA1 of the source, as Redis names the script. */
  readonly sha: string;

  constructor(
    /** Name used in error messages. */
    readonly name: string,
    /** The Lua source, opening with its header comment. */
    readonly source: string,
  ) {
    this.sha = createHash('sha1').update(source).digest('hex');
    DEFINED.push(this);
  }

  /** Runs the script with `keys` as KEYS and `args` as ARGV and returns its reply. */
  async run(redis: RedisClient, keys: string[], args: Array<string | number | Buffer>): Promise<unknown> {
    return this.send(redis, keys, args, 'utf8');
  }

  /** As `run`, with every bulk string of the reply as a Buffer (binary-safe: bitmaps, for example). */
  async runBuffer(redis: RedisClient, keys: string[], args: Array<string | number | Buffer>): Promise<unknown> {
    return this.send(redis, keys, args, null);
  }

  /**
   * EVALSHA, then EVAL on NOSCRIPT. The command is built from one array, never spread into a
   * call (`redis.evalsha(sha, n, ...args)`): a 100,000-node CreateRun has 300,000 arguments,
   * more than a call's stack takes.
   */
  private async send(redis: RedisClient, keys: string[], args: Array<string | number | Buffer>, replyEncoding: BufferEncoding | null): Promise<unknown> {
    const rest = [keys.length, ...keys, ...args];
    try {
      return await redis.sendCommand(new Command('evalsha', [this.sha, ...rest], { replyEncoding }));
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return redis.sendCommand(new Command('eval', [this.source, ...rest], { replyEncoding }));
    }
  }
}
