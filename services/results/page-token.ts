import { InvalidArgumentError } from '../../lib/errors';
import { isTaskId } from '../../lib/task-id';

/**
 * ListRuns page tokens: opaque to clients, internally the last run of the previous page (task
 * id and its score in the runs index) as base64url JSON. A position by key rather than an offset,
 * so runs created between two pages do not shift what the next page shows.
 */

/** Where the previous page ended. */
export interface PageCursor {
  /** Task id of the last run of the previous page. */
  taskId: string;
  /** Its score in the runs index (creation time, ms). */
  score: number;
}

/** Encodes a cursor as an opaque token. */
export function encodePageToken(cursor: PageCursor): string {
  return Buffer.from(JSON.stringify({ t: cursor.taskId, s: cursor.score })).toString('base64url');
}

/** Decodes a token made by `encodePageToken`; anything else is INVALID_ARGUMENT. */
export function decodePageToken(token: string): PageCursor {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const p = parsed as { t?: unknown; s?: unknown } | undefined;
  if (!p || typeof p !== 'object' || typeof p.t !== 'string' || !isTaskId(p.t) || typeof p.s !== 'number' || !Number.isFinite(p.s)) {
    const description = 'page_token must be the next_page_token of a previous ListRuns response';
    throw new InvalidArgumentError(description, [{ field: 'page_token', description }]);
  }
  return { taskId: p.t, score: p.s };
}
