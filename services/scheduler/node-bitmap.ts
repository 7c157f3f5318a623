import { INDEX_CHUNK_NODES } from '../../lib/redis';

/**
 * Bitmaps over dense node ids, laid out as Redis lays out a string for SETBIT/GETBIT: bit `id`
 * is bit `7 - id % 8` of byte `id >> 3` (most significant bit first). Discovery combines the
 * bitmaps it reads from the index here, in memory: a 100,000-node bitmap is 12.5 kB, so AND, OR
 * and NOT over it cost microseconds, where shipping the members' names costs tens of ms.
 */

/** A bitmap of `ids` bits; bytes past the end of a shorter bitmap read as zero. */
export type NodeBitmap = Uint8Array;

/** Bits set per byte value, for counting. */
const POPCOUNT = Uint8Array.from({ length: 256 }, (_, b) => {
  let n = 0;
  for (let v = b; v > 0; v >>= 1) n += v & 1;
  return n;
});

/** An all-zero bitmap able to hold ids below `ids`. */
export function emptyBitmap(ids: number): NodeBitmap {
  return new Uint8Array(Math.ceil(ids / 8));
}

/** A copy of `source` (a Redis reply, possibly shorter or longer) resized to hold ids below `ids`. */
export function fitBitmap(source: Uint8Array | undefined, ids: number): NodeBitmap {
  const out = emptyBitmap(ids);
  if (source) out.set(source.subarray(0, out.length));
  return out;
}

/** A bitmap with the given ids set (ids at or past `ids` are ignored). */
export function bitmapOfIds(idList: Iterable<number>, ids: number): NodeBitmap {
  const out = emptyBitmap(ids);
  for (const id of idList) if (id >= 0 && id < ids) out[id >> 3] |= 0x80 >> (id & 7);
  return out;
}

/** Whether bit `id` is set. */
export function hasBit(bitmap: NodeBitmap, id: number): boolean {
  return ((bitmap[id >> 3] ?? 0) & (0x80 >> (id & 7))) !== 0;
}

/** Clears bit `id` in place. */
export function clearBit(bitmap: NodeBitmap, id: number): void {
  if (id >> 3 < bitmap.length) bitmap[id >> 3] &= ~(0x80 >> (id & 7));
}

/** `a AND b` into `a` (same length). */
export function andInto(a: NodeBitmap, b: NodeBitmap): NodeBitmap {
  for (let i = 0; i < a.length; i++) a[i] &= b[i];
  return a;
}

/** `a OR b` into `a` (same length). */
export function orInto(a: NodeBitmap, b: NodeBitmap): NodeBitmap {
  for (let i = 0; i < a.length; i++) a[i] |= b[i];
  return a;
}

/** `a AND NOT b` into `a` (same length). */
export function andNotInto(a: NodeBitmap, b: NodeBitmap): NodeBitmap {
  for (let i = 0; i < a.length; i++) a[i] &= ~b[i];
  return a;
}

/** The number of bits set. */
export function countBits(bitmap: NodeBitmap): number {
  let n = 0;
  for (let i = 0; i < bitmap.length; i++) n += POPCOUNT[bitmap[i]];
  return n;
}

/**
 * One bitmap of ids below `ids` from the bitmaps of the index's chunks (`parts[c]` over the
 * offsets of chunk c, lib/redis.ts INDEX_CHUNK_NODES): chunk c's bytes go at byte
 * c * INDEX_CHUNK_NODES / 8, as offset o of chunk c is id c * INDEX_CHUNK_NODES + o.
 */
export function joinChunks(parts: ReadonlyArray<Uint8Array | null | undefined>, ids: number): NodeBitmap {
  const out = emptyBitmap(ids);
  const chunkBytes = INDEX_CHUNK_NODES / 8;
  parts.forEach((part, c) => {
    const at = c * chunkBytes;
    if (part && at < out.length) out.set(part.subarray(0, Math.min(chunkBytes, out.length - at)), at);
  });
  return out;
}
