import { InvalidArgumentError } from './errors';

/**
 * Page tokens of the List* calls: opaque to clients; inside, base64url JSON of where the
 * previous page ended (`position`, a key such as the last name sent, never an offset, so items
 * added or removed between two pages do not shift the next one) and a fingerprint of the
 * listing it belongs to (the request's filters). A token used with other filters is refused
 * rather than followed: its position means nothing in another listing, and following it would
 * silently skip items.
 */
export interface PageTokens<P> {
  /** The token of a page that ended at `position` of the listing `listing` (its filters' fingerprint). */
  encode(position: P, listing: string): string;
  /** The position in `token`; INVALID_ARGUMENT naming page_token when it is not one of this call's tokens for `listing`. */
  decode(token: string, listing: string): P;
}

/** What a call's page tokens are. */
export interface PageTokenSpec<P> {
  /** The call, as the error messages name it (`ListRuns`). */
  method: string;
  /** The request fields that make the listing, as the error messages name them (`environment and include_private`). */
  listingFields: string;
  /** True when a decoded value is a position this call made. */
  isPosition(value: unknown): value is P;
}

/** The page tokens of one call. */
export function pageTokens<P>(spec: PageTokenSpec<P>): PageTokens<P> {
  const invalid = (message: string, description: string) => new InvalidArgumentError(message, [{ field: 'page_token', description }]);
  return {
    encode(position, listing) {
      return Buffer.from(JSON.stringify({ p: position, l: listing })).toString('base64url');
    },
    decode(token, listing) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
      } catch {
        parsed = undefined;
      }
      const t = parsed as { p?: unknown; l?: unknown } | null | undefined;
      if (typeof t !== 'object' || t === null || typeof t.l !== 'string' || !spec.isPosition(t.p)) {
        throw invalid(
          `page_token is not a next_page_token of ${spec.method}; leave it empty for the first page`,
          `expected the next_page_token of a previous ${spec.method} response`,
        );
      }
      if (t.l !== listing) {
        throw invalid(
          `page_token belongs to a ${spec.method} request with other ${spec.listingFields}; send the same ${spec.listingFields} as the request that returned it, or no page_token`,
          `${spec.listingFields} must be the same on every page`,
        );
      }
      return t.p;
    },
  };
}
