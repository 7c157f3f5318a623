import { InvalidArgumentError } from '../../lib/errors';
import { isTaskId } from '../../lib/task-id';

/**
 * ListRuns page tokens: opaque to clients, internally the last run of the previous page (task
 * id and its score in the runs index) and the fingerprint of the filters it was listed with,
 * as base64url JSON. A position by key rather than an offset, so runs created between two pages
 * do not shift what the next page shows.
 */

/** Where the previous page ended. */
export interface PageCursor {
  /** Task id of the last run of the previous page. */
  taskId: string;
  /** Its score in the runs index (creation time, ms). */
  score: number;
}

const MALFORMED = 'page_token must be the next_page_token of a previous ListRuns response';
const OTHER_FILTERS =
  'page_token belongs to a ListRuns request with other filters: send the same task, caller, created_after and created_before as the request that returned it, or no page_token';

function invalidToken(description: string): InvalidArgumentError {
  return new InvalidArgumentError(description, [{ field: 'page_token', description }]);
}

/** Encodes a cursor as an opaque token bound to the filters' fingerprint ('' for no filter). */
export function encodePageToken(cursor: PageCursor, fingerprint = ''): string {
  return Buffer.from(JSON.stringify(fingerprint ? { t: cursor.taskId, s: cursor.score, f: fingerprint } : { t: cursor.taskId, s: cursor.score })).toString('base64url');
}

/**
 * Decodes a token made by `encodePageToken` for the same filters (`fingerprint`); anything
 * else is INVALID_ARGUMENT. Refusing a token of other filters, rather than following it, keeps
 * a client from silently skipping runs: the position is only meaningful in the index and
 * time range it was taken from.
 */
export function decodePageToken(token: string, fingerprint = ''): PageCursor {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const p = parsed as { t?: unknown; s?: unknown; f?: unknown } | undefined;
  if (!p || typeof p !== 'object' || typeof p.t !== 'string' || !isTaskId(p.t) || typeof p.s !== 'number' || !Number.isFinite(p.s) || (p.f !== undefined && typeof p.f !== 'string')) {
    throw invalidToken(MALFORMED);
  }
  if ((p.f ?? '') !== fingerprint) throw invalidToken(OTHER_FILTERS);
  return { taskId: p.t, score: p.s };
}
