import { pageTokens } from '../../lib/page-token';
import { isTaskId } from '../../lib/task-id';

/** Where the previous ListRuns page ended: its last run, by key in the runs index. */
export interface PageCursor {
  /** Task id of the last run of the previous page. */
  taskId: string;
  /** Its score in the runs index (creation time, ms). */
  score: number;
}

/** ListRuns page tokens (lib/page-token.ts), bound to the fingerprint of the request's filters. */
export const RUN_PAGE_TOKENS = pageTokens<PageCursor>({
  method: 'ListRuns',
  listingFields: 'filters (task, caller, created_after, created_before)',
  isPosition: (v): v is PageCursor => {
    const c = v as Partial<PageCursor> | null;
    return typeof c === 'object' && c !== null && typeof c.taskId === 'string' && isTaskId(c.taskId) && typeof c.score === 'number' && Number.isFinite(c.score);
  },
});
