import { InvalidArgumentError } from '../../lib/errors';

/**
 * ListTasks page tokens. Opaque to clients; inside, base64url JSON of the request that made
 * it and the last name sent, so a page starts after that name even if tasks were added or
 * removed in between, and a token replayed with other filters is refused rather than giving
 * a page of a different listing.
 */

/** What a page token carries. */
export interface PageToken {
  /** Environment of the listing. */
  env: string;
  /** `include_private` of the listing. */
  includePrivate: boolean;
  /** Name of the last task of the previous page. */
  after: string;
}

/** Encodes a page token. */
export function encodePageToken(token: PageToken): string {
  return Buffer.from(JSON.stringify(token)).toString('base64url');
}

/** Decodes a page token; anything not made by `encodePageToken` is INVALID_ARGUMENT. */
export function decodePageToken(text: string): PageToken {
  const bad = () => new InvalidArgumentError('page_token is not a token returned by ListTasks; leave it empty for the first page', [
    { field: 'page_token', description: 'expected the next_page_token of a previous ListTasks response' },
  ]);
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  const t = doc as Partial<PageToken> | null;
  if (typeof t !== 'object' || t === null || typeof t.env !== 'string' || typeof t.includePrivate !== 'boolean' || typeof t.after !== 'string') throw bad();
  return { env: t.env, includePrivate: t.includePrivate, after: t.after };
}
