import type { BatchSpec } from './run-request';

/** The number of nodes per batch: `size`, or `percent` of `nodeCount` rounded up; at least 1. */
export function batchSizeOf(spec: BatchSpec, nodeCount: number): number {
  const size = spec.size ?? Math.ceil((spec.percent * nodeCount) / 100);
  return Math.max(1, size);
}

/**
 * Splits a run's nodes (in the order given, the sorted discovery order) into the batches the
 * run command goes out in; one batch of every node when `spec` is undefined. As with Choria's
 * `--batch N%` (docs/choria-compat.md §1.3), a percentage is of the nodes the run reaches; it is
 * rounded up so that no batch is empty.
 */
export function planBatches(nodes: readonly string[], spec: BatchSpec | undefined): string[][] {
  if (!spec || nodes.length === 0) return [[...nodes]];
  const size = batchSizeOf(spec, nodes.length);
  const batches: string[][] = [];
  for (let i = 0; i < nodes.length; i += size) batches.push(nodes.slice(i, i + size));
  return batches;
}
