/** Stored data that cannot be read back (a run record, a result, its brief, an event): corrupt data, not a caller's mistake. */
export class CorruptRecordError extends Error {}
