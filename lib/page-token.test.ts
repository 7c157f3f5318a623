import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from './errors';
import { pageTokens } from './page-token';

const tokens = pageTokens<{ n: number }>({
  method: 'ListThings',
  listingFields: 'colour and size',
  isPosition: (v): v is { n: number } => typeof v === 'object' && v !== null && typeof (v as { n?: unknown }).n === 'number',
});

describe('page tokens', () => {
  it('round-trip a position of the same listing', () => {
    assert.deepEqual(tokens.decode(tokens.encode({ n: 7 }, ''), ''), { n: 7 });
    assert.deepEqual(tokens.decode(tokens.encode({ n: 7 }, 'red,big'), 'red,big'), { n: 7 });
  });

  it('reject anything that is not a token of the call with INVALID_ARGUMENT naming page_token', () => {
    const bad = [
      'nope',
      '',
      Buffer.from('{"p":{"n":"x"},"l":""}').toString('base64url'),
      Buffer.from('[]').toString('base64url'),
      Buffer.from('null').toString('base64url'),
    ];
    for (const token of bad) {
      assert.throws(
        () => tokens.decode(token, ''),
        (err: Error) =>
          err instanceof InvalidArgumentError &&
          err.violations[0].field === 'page_token' &&
          err.message === 'page_token is not a next_page_token of ListThings; leave it empty for the first page',
      );
    }
  });

  it('reject a token made for another listing, naming the fields that must match', () => {
    for (const [made, used] of [
      ['red', ''],
      ['', 'red'],
      ['red', 'blue'],
    ]) {
      assert.throws(
        () => tokens.decode(tokens.encode({ n: 1 }, made), used),
        (err: Error) =>
          err instanceof InvalidArgumentError &&
          /^page_token belongs to a ListThings request with other colour and size; send the same colour and size/.test(err.message),
      );
    }
  });
});
