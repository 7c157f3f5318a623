import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { REDACTED_VALUE } from '../lib/redaction';
import { redactSensitive } from './node-result';

describe('redactSensitive', () => {
  it('replaces a top-level _sensitive for logs and listings and leaves everything else', () => {
    const value = { user: 'bob', _sensitive: { password: 'hunter2' } };
    assert.deepEqual(redactSensitive(value), { user: 'bob', _sensitive: REDACTED_VALUE });
    assert.deepEqual(value._sensitive, { password: 'hunter2' }, 'the result itself keeps it');
    assert.deepEqual(redactSensitive({ nested: { _sensitive: 1 } }), { nested: { _sensitive: 1 } }, 'only the top level is special (docs/task-format.md §6.1)');
  });
});
