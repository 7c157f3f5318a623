import { Cluster, type ChainableCommander, type default as Redis } from 'ioredis';

/**
 * What differs between one Redis server and a Redis Cluster, in one place. A client is either
 * (`createRedis` picks from the redis-url); code that works on both uses these helpers where a
 * Cluster client behaves differently: an ioredis Cluster pipeline may only hold keys of slots
 * one node serves, SCAN/KEYS/INFO/SCRIPT LOAD reach one node only, and `duplicate` takes
 * other arguments.
 */

/** A client of one Redis server or of a Redis Cluster. */
export type RedisClient = Redis | Cluster;

/** The replies of a pipeline: one `[error, reply]` per command, in order. */
export type PipelineReplies = Array<[Error | null, unknown]>;

/** Whether `redis` is a Cluster client. */
export function isCluster(redis: RedisClient): redis is Cluster {
  return redis instanceof Cluster;
}

/** Number of hash slots of a Redis Cluster. */
const SLOTS = 16384;

/** CRC16-XMODEM table (polynomial 0x1021), the checksum Redis Cluster hashes keys with. */
const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/**
 * The hash slot of `key`, as Redis Cluster computes it (CLUSTER KEYSLOT): CRC16 of the key, or
 * of the text between its first `{` and the next `}` when that text is not empty (the hash tag),
 * modulo 16384. Computed on the key's UTF-8 bytes.
 */
export function keySlot(key: string): number {
  let bytes = Buffer.from(key, 'utf8');
  const open = bytes.indexOf(0x7b);
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const b of bytes) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ b) & 0xff];
  return crc % SLOTS;
}

/** Errors a Cluster node answers while slots move or fail over: the command belongs elsewhere or a moment later. */
const REDIRECTED = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /;

/**
 * Runs the commands `add` puts in a pipeline for each of `items` (all on the key `keyOf(item)`,
 * or on keys of its slot) and returns their replies in order, as one pipeline over all items
 * would. On one server that is one pipeline. On a Cluster it is one pipeline per node, grouped by
 * the client's slot map, sent in parallel; an item whose node answered with a redirection (a
 * slot that moved meanwhile) is sent again alone, through the client, which follows it.
 */
export async function execPerKey<T>(
  redis: RedisClient,
  items: readonly T[],
  keyOf: (item: T) => string,
  add: (pipeline: ChainableCommander, item: T) => void,
): Promise<PipelineReplies> {
  if (items.length === 0) return [];
  if (!isCluster(redis)) {
    const pipeline = redis.pipeline();
    for (const item of items) add(pipeline, item);
    return (await pipeline.exec()) ?? [];
  }
  const groups = new Map<string, number[]>();
  items.forEach((item, i) => {
    const node = redis.slots[keySlot(keyOf(item))]?.join(',') ?? '';
    let group = groups.get(node);
    if (!group) groups.set(node, (group = []));
    group.push(i);
  });
  const perItem = new Array<PipelineReplies>(items.length);
  const runAlone = async (i: number): Promise<void> => {
    const pipeline = redis.pipeline();
    add(pipeline, items[i]);
    perItem[i] = (await pipeline.exec()) ?? [];
  };
  await Promise.all(
    [...groups.values()].map(async (indexes) => {
      const pipeline = redis.pipeline();
      const counts = indexes.map((i) => {
        const before = pipeline.length;
        add(pipeline, items[i]);
        return pipeline.length - before;
      });
      let replies: PipelineReplies;
      try {
        replies = (await pipeline.exec()) ?? [];
      } catch {
        // The slot map changed between grouping and sending (the client refuses a pipeline
        // spanning nodes): each item goes alone.
        await Promise.all(indexes.map(runAlone));
        return;
      }
      let at = 0;
      const again: number[] = [];
      indexes.forEach((i, k) => {
        perItem[i] = replies.slice(at, at + counts[k]);
        at += counts[k];
        if (perItem[i].some(([err]) => err && REDIRECTED.test(err.message))) again.push(i);
      });
      await Promise.all(again.map(runAlone));
    }),
  );
  return perItem.flat();
}

/** The first error among pipeline replies, thrown; else the replies. */
export function throwFirstError(replies: PipelineReplies): PipelineReplies {
  const failed = replies.find(([err]) => err);
  if (failed?.[0]) throw failed[0];
  return replies;
}

/**
 * The clients of the servers holding the data: `redis` itself on one server, every master of a
 * Cluster (SCAN, KEYS, INFO, DBSIZE, SCRIPT LOAD and CLIENT LIST answer for one node only).
 */
export function dataNodes(redis: RedisClient): Redis[] {
  return isCluster(redis) ? redis.nodes('master') : [redis];
}

/** `dataNodes` once the client is connected: a Cluster client knows its masters only from then on. */
export async function readyDataNodes(redis: RedisClient): Promise<Redis[]> {
  if (isCluster(redis) && redis.status !== 'ready') {
    // Any command waits for the cluster to be ready; PING answers wherever it lands.
    await redis.ping();
  }
  return dataNodes(redis);
}

/**
 * A second client like `redis` (same server or cluster, same options), for blocking reads that
 * must not hold up the first; `connectionName` replaces the name CLIENT LIST shows.
 */
export function duplicateRedis(redis: RedisClient, connectionName?: string): RedisClient {
  if (!isCluster(redis)) return redis.duplicate(connectionName ? { connectionName } : {});
  const redisOptions = { ...redis.options.redisOptions, ...(connectionName ? { connectionName } : {}) };
  return redis.duplicate(undefined, { ...redis.options, redisOptions });
}

/**
 * Every key matching `pattern` (SCAN, COUNT 1000, on every data node): for tests, tools and
 * small keyspaces, never on a request path.
 */
export async function scanKeys(redis: RedisClient, pattern: string): Promise<string[]> {
  const found: string[] = [];
  for (const node of await readyDataNodes(redis)) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      found.push(...keys);
      cursor = next;
    } while (cursor !== '0');
  }
  return found;
}

/** A numeric INFO field (`used_memory`, `used_cpu_user`...) summed over the data nodes. */
export async function infoSum(redis: RedisClient, section: string, field: string): Promise<number> {
  const texts = await Promise.all((await readyDataNodes(redis)).map((node) => node.info(section)));
  return texts.reduce((sum, text) => sum + (Number(new RegExp(`^${field}:([\\d.]+)`, 'm').exec(text)?.[1]) || 0), 0);
}
