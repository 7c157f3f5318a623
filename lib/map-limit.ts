/**
 * Runs `fn` over `items`, at most `limit` calls at a time, and resolves with the results in the
 * order of `items`: independent waits (files, HTTP, Redis round trips) overlap while each stays
 * bounded.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
