import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../lib/errors';
import { decodePageToken, encodePageToken } from './page-token';

describe('page tokens', () => {
  it('round-trip a cursor', () => {
    const cursor = { taskId: '0123456789abcdef0123456789abcdef', score: 1_700_000_000_123 };
    assert.deepEqual(decodePageToken(encodePageToken(cursor)), cursor);
    assert.deepEqual(decodePageToken(encodePageToken(cursor, 'abcd'), 'abcd'), cursor);
  });

  it('reject anything that is not a token of ours with INVALID_ARGUMENT naming page_token', () => {
    for (const bad of ['nope', Buffer.from('{"t":"x","s":1}').toString('base64url'), Buffer.from('[]').toString('base64url')]) {
      assert.throws(() => decodePageToken(bad), (err: Error) => err instanceof InvalidArgumentError && err.violations[0].field === 'page_token');
    }
  });

  it('reject a token made for other filters, saying so', () => {
    const cursor = { taskId: '0123456789abcdef0123456789abcdef', score: 1 };
    for (const [made, used] of [['abcd', ''], ['', 'abcd'], ['abcd', 'ef01']]) {
      assert.throws(
        () => decodePageToken(encodePageToken(cursor, made), used),
        (err: Error) => err instanceof InvalidArgumentError && /^page_token belongs to a ListRuns request with other filters/.test(err.message),
      );
    }
  });
});
