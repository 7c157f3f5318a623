import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { InvalidArgumentError, MAX_ERROR_MESSAGE_CHARS, MAX_VIOLATIONS_SENT, NotFoundError, readServiceError, toServiceError } from './errors';
import { quote } from './quote';

/** What a client receives from `toServiceError(err)`, and the size of its trailers in bytes. */
function sent(err: unknown) {
  const s = toServiceError(err);
  const metadata = s.metadata ?? new Metadata();
  const trailerBytes = Object.entries(metadata.toHttp2Headers()).reduce((n, [k, v]) => n + k.length + String(v).length, 0) + encodeURI(s.details ?? '').length;
  const asClientSees = Object.assign(new Error(s.details), { code: s.code, details: s.details, metadata }) as ServiceError;
  return { report: readServiceError(asClientSees), trailerBytes };
}

describe('toServiceError', () => {
  it('keeps the trailers under 16 KiB whatever the error holds', () => {
    const huge = 'x'.repeat(10 * 1024 * 1024);
    const violations = Array.from({ length: 10_000 }, (_, i) => ({ field: `f${i}${huge.slice(0, 5_000)}`, description: huge.slice(0, 10_000) }));
    const { report, trailerBytes } = sent(new InvalidArgumentError(huge, violations, 'INVALID_TASK_INPUT', { task: huge, a: huge }));
    assert.ok(trailerBytes < 16 * 1024, `trailers of ${trailerBytes} bytes`);
    assert.equal(report.message.length, MAX_ERROR_MESSAGE_CHARS);
    assert.match(report.message, /x… \(10000 problems; the first 16 are in the details\)$/);
    assert.equal(report.violations.length, MAX_VIOLATIONS_SENT);
    assert.equal(report.metadata?.task.length, 256);
  });

  it('sends a message on one line', () => {
    assert.equal(sent(new NotFoundError('X', 'first\nsecond\r\nthird')).report.message, 'first second third');
  });

  it('bounds an upstream error passed through', () => {
    const upstream: ServiceError = Object.assign(new Error('x'), { code: status.NOT_FOUND, details: 'y'.repeat(100_000), metadata: new Metadata() });
    assert.equal(toServiceError(upstream).details?.length, MAX_ERROR_MESSAGE_CHARS);
  });

  it('sends each violation as given, cut to 256 characters', () => {
    const field = 'filter.compound[0]';
    const { report } = sent(
      new InvalidArgumentError(`${field}: expected ')' at column 5`, [
        { field, description: "expected ')' at column 5" },
        { field: 'input_json', description: 'x'.repeat(300) },
      ]),
    );
    assert.deepEqual(report.violations, [
      { field, description: "expected ')' at column 5" },
      { field: 'input_json', description: `${'x'.repeat(255)}…` },
    ]);
  });

  it('carries the ErrorInfo metadata of the error', () => {
    const { report } = sent(
      new InvalidArgumentError('bad', [{ field: 'count', description: 'expects an Integer' }], 'INVALID_TASK_INPUT', {
        task: 'demo::echo',
        parameters: 'count',
      }),
    );
    assert.equal(report.reason, 'INVALID_TASK_INPUT');
    assert.deepEqual(report.metadata, { task: 'demo::echo', parameters: 'count' });
  });
});

describe('quote', () => {
  it('shows a short value whole and a long one as a prefix with its length, always on one line', () => {
    assert.equal(quote('demo::echo'), "'demo::echo'");
    assert.equal(quote('a'.repeat(50)), `'${'a'.repeat(40)}…' (50 characters)`);
    assert.equal(quote("it's\nnew"), "'it\\'s\\nnew'");
  });
});
