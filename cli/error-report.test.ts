import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status, type ServiceError } from '@grpc/grpc-js';
import { CallerBudgets } from '../lib/caller-budget';
import { BatonError, toServiceError } from '../lib/errors';
import { EXIT } from './cli-error';
import { describeError } from './error-report';

/** What the CLI receives for `err` thrown by a service handler. */
function received(err: BatonError): ServiceError {
  const s = toServiceError(err);
  return Object.assign(new Error(s.details), { code: s.code, details: s.details, metadata: s.metadata }) as ServiceError;
}

describe('describeError', () => {
  it('tells a caller over its request budget to try later (exit 75), in the one line the service sent', () => {
    const budgets = new CallerBudgets({ requestsPerS: 1, burst: 1, nowMs: () => 0 });
    assert.equal(budgets.admit('operator:alice'), undefined);
    const over = budgets.admit('operator:alice');
    assert.ok(over);
    const { line, exitCode } = describeError(received(budgets.refusal(over)));
    assert.equal(exitCode, EXIT.TRY_LATER);
    assert.equal(line, 'cert=alice is over its request budget at this service (1 a second, bursts of 1; a refused request counts as 10); retry in 2.0 s');
  });

  it('keeps other RESOURCE_EXHAUSTED answers (a message over the size a service takes) a usage error', () => {
    assert.equal(describeError(received(new BatonError(status.RESOURCE_EXHAUSTED, 'X', 'Received message larger than max'))).exitCode, EXIT.USAGE);
  });
});
