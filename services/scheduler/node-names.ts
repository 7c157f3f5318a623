import { PackedTexts } from '../../lib/linear-regex';
import type { RedisClient as Redis } from '../../lib/redis-client';
import { countBits, emptyBitmap, type NodeBitmap } from './node-bitmap';

/**
 * Identity tests whose answers a NodeNames keeps (a bitmap of one bit per id each, 12.5 kB at
 * 100,000 nodes). Operators repeat a query (discover, then run with the same filter), and
 * several schedulers' watches ask the same identity regexes again and again.
 */
export const MATCH_CACHE_ENTRIES = 32;

/**
 * A test of many identities at once (`LinearRegex.testPacked`): calls `matched(id)` for each
 * identity of ids `from` .. `to - 1` it accepts, in the packed copy's layout (ids in order).
 */
export type PackedTest = (texts: PackedTexts, from: number, to: number, matched: (id: number) => void) => void;

/**
 * Below this share of the fleet, the identities with a test's literal prefix are tested one by
 * one (found in the identity order); above it, every identity is tested in one pass over the
 * packed copy, which costs less per identity than a call per identity.
 */
const PREFIX_RANGE_SHARE = 1 / 16;

/** A test's answer over the ids below `upTo`. */
interface CachedMatch {
  bits: NodeBitmap;
  upTo: number;
}

/**
 * The scheduler's copy of the index's id → identity list (`<p>:nodenames`, lib/redis.ts).
 * Ids are assigned once by the upsert script (an RPUSH) and never reused or removed, so the
 * list only grows and a copy of its first N entries stays exact forever: refreshing reads only
 * the entries past N (one LLEN when nothing changed). Every scheduler replica keeps its own
 * copy; a node registered through another replica is read on the next refresh.
 */
export class NodeNames {
  /** id → identity. */
  private readonly names: string[] = [];
  /** identity → id. */
  private readonly ids = new Map<string, number>();
  /** Every id, ordered by identity (UTF-16 code units, as `Array.prototype.sort`). */
  private order = new Uint32Array(0);
  /** `names` in identity order, built on demand. */
  private sortedCache: string[] | undefined;
  /** The refresh under way, so that concurrent queries read the new entries once. */
  private pending: Promise<void> | undefined;
  /** Answers of `matching`, by key, least recently used first. */
  private readonly matches = new Map<string, CachedMatch>();
  /**
   * Every identity in id order, UTF-8, each followed by a 0 byte (`PackedTexts`), appended to
   * as ids are added: the text a PackedTest reads. Its capacity doubles as it fills.
   */
  private packed = PackedTexts.empty();

  constructor(
    private readonly redis: Redis,
    /** The `<p>:nodenames` list. */
    private readonly listKey: string,
  ) {}

  /** How many ids the copy holds (ids 0 .. count-1). */
  get count(): number {
    return this.names.length;
  }

  /** Reads the ids assigned since the last refresh; `knownCount` (an LLEN read elsewhere) spares the LLEN. */
  async refresh(knownCount?: number): Promise<void> {
    if (knownCount !== undefined && knownCount <= this.names.length) return;
    // A read under way began before this call and may miss an id assigned since: wait for it,
    // then read again, unless another caller that waited with this one has begun that read
    // already. Each waiter reading again in turn cost one round trip per waiter, one after the
    // other.
    if (this.pending) await this.pending.catch(() => undefined);
    if (knownCount !== undefined && knownCount <= this.names.length) return;
    this.pending ??= this.readNew().finally(() => {
      this.pending = undefined;
    });
    await this.pending;
  }

  private async readNew(): Promise<void> {
    const from = this.names.length;
    const added = await this.redis.lrange(this.listKey, from, -1);
    if (added.length === 0) return;
    for (const name of added) {
      this.ids.set(name, this.names.length);
      this.names.push(name);
    }
    this.mergeOrder(from);
    this.packed = this.packed.append(added);
  }

  /** Merges the ids from `from` on into the identity order: one sort of the new ones, one linear merge. */
  private mergeOrder(from: number): void {
    const names = this.names;
    const fresh = Array.from({ length: names.length - from }, (_, i) => from + i).sort((a, b) => (names[a] < names[b] ? -1 : names[a] > names[b] ? 1 : 0));
    const old = this.order;
    const merged = new Uint32Array(names.length);
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < old.length && j < fresh.length) merged[k++] = names[old[i]] <= names[fresh[j]] ? old[i++] : fresh[j++];
    while (i < old.length) merged[k++] = old[i++];
    while (j < fresh.length) merged[k++] = fresh[j++];
    this.order = merged;
    this.sortedCache = undefined;
  }

  /** The id of an identity, if the copy has it. */
  idOf(identity: string): number | undefined {
    return this.ids.get(identity);
  }

  /** Every identity, sorted. */
  sorted(): string[] {
    this.sortedCache ??= Array.from(this.order, (id) => this.names[id]);
    return this.sortedCache;
  }

  /** The identities whose bit is set, sorted; bits past the copy's ids are ignored (refresh first). */
  namesOf(bitmap: NodeBitmap): string[] {
    // Inlined bit test over the identity order: this loop runs over every node on each query.
    // The answer is sized once, to the bits set: pushing names one by one grows the array
    // again and again, far dearer than filling a presized one when a term matches most of the
    // fleet; sizing it to every node would make a small answer allocate for the whole fleet.
    const sorted = this.sorted();
    const order = this.order;
    const out = new Array<string>(Math.min(countBits(bitmap), order.length));
    let n = 0;
    for (let i = 0; i < order.length && n < out.length; i++) {
      const id = order[i];
      if ((bitmap[id >> 3] & (0x80 >> (id & 7))) !== 0) out[n++] = sorted[i];
    }
    out.length = n;
    return out;
  }

  /**
   * The identities `test` accepts, as a bitmap of `count` ids, shared (a caller copies it before
   * changing it). `key` names the test (the same key, the same test): its answer is kept and
   * later calls test only the ids added since, which is exact because an id's identity never
   * changes. Only the identities starting with `prefix` are tested (the test must accept no
   * other): found by binary search in the identity order, so an anchored regex
   * (`^web01`) tests the few names it can match instead of every node. `packedTest`, the same
   * test over many identities at once, is used instead where many are to be tested.
   */
  matching(key: string, test: (identity: string) => boolean, prefix = '', packedTest?: PackedTest): NodeBitmap {
    const count = this.names.length;
    let cached = this.matches.get(key);
    if (cached) this.matches.delete(key); // re-inserted below: most recently used
    if (!cached) {
      const bits = emptyBitmap(count);
      cached = { bits, upTo: count };
      const sorted = this.sorted();
      const first = this.firstAtOrAfter(prefix);
      // The prefix's range, followed only as far as that share of the fleet when the packed
      // test can take over.
      const limit = packedTest ? first + Math.ceil(count * PREFIX_RANGE_SHARE) : sorted.length;
      let last = first;
      while (last < sorted.length && last < limit && sorted[last].startsWith(prefix)) last++;
      if (packedTest && last === limit && last < sorted.length && sorted[last].startsWith(prefix)) {
        packedTest(this.packed, 0, count, (id) => (bits[id >> 3] |= 0x80 >> (id & 7)));
      } else {
        for (let i = first; i < last; i++) {
          if (test(sorted[i])) {
            const id = this.order[i];
            bits[id >> 3] |= 0x80 >> (id & 7);
          }
        }
      }
    } else if (cached.upTo < count) {
      const bits = emptyBitmap(count);
      bits.set(cached.bits);
      if (packedTest) packedTest(this.packed, cached.upTo, count, (id) => (bits[id >> 3] |= 0x80 >> (id & 7)));
      else for (let id = cached.upTo; id < count; id++) if (this.names[id].startsWith(prefix) && test(this.names[id])) bits[id >> 3] |= 0x80 >> (id & 7);
      cached = { bits, upTo: count };
    }
    this.matches.set(key, cached);
    if (this.matches.size > MATCH_CACHE_ENTRIES) this.matches.delete(this.matches.keys().next().value!);
    return cached.bits;
  }

  /** The position in the identity order of the first identity not below `text`. */
  private firstAtOrAfter(text: string): number {
    const sorted = this.sorted();
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid] < text) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
