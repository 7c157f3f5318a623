import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ListRunsRequest } from '../../gen/baton/v1/results_service';
import { InvalidArgumentError } from '../../lib/errors';
import { runQueryFingerprint, runQueryOf } from './run-query';

const query = (fields: Partial<ListRunsRequest>) => runQueryOf(ListRunsRequest.fromPartial(fields));

describe('runQueryOf', () => {
  it('turns the exclusive time bounds into inclusive whole-millisecond scores', () => {
    const q = query({ createdAfter: new Date(1_000), createdBefore: new Date(2_000) });
    assert.deepEqual([q.minScore, q.maxScore], [1_001, 1_999]);
    assert.deepEqual([query({}).minScore, query({}).maxScore], [-Infinity, Infinity]);
  });

  it('treats an empty task or caller as no filter, and refuses a task that is no task name', () => {
    assert.deepEqual(query({ task: '', caller: '' }), query({}));
    assert.throws(
      () => query({ task: 'acme::Deploy' }),
      (err: Error) => err instanceof InvalidArgumentError && err.violations[0].field === 'task',
    );
  });
});

describe('runQueryFingerprint', () => {
  it('is empty for no filter and differs for every other combination', () => {
    assert.equal(runQueryFingerprint(query({})), '');
    const prints = [
      query({ task: 'acme::deploy' }),
      query({ caller: 'acme::deploy' }),
      query({ task: 'acme::deploy', caller: 'user=a' }),
      query({ createdAfter: new Date(5) }),
      query({ createdBefore: new Date(5) }),
      query({ createdAfter: new Date(5), createdBefore: new Date(9) }),
    ].map(runQueryFingerprint);
    assert.equal(new Set(prints).size, prints.length);
    assert.ok(prints.every((p) => /^[0-9a-f]{16}$/.test(p)));
    assert.equal(runQueryFingerprint(query({ task: 'acme::deploy' })), prints[0], 'the same filters give the same fingerprint');
  });
});
