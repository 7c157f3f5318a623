import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startOtlpReceiver, type ReceivedSpan } from '../test/helpers/otlp-receiver';
import { useRedisServer } from '../test/helpers/redis';
import { trace } from '@opentelemetry/api';
import { extractTraceContext, injectTraceContext, inSpan, redisStatement, tracingConfigured } from './tracing';

/**
 * A child process (tracing has to start before grpc-js and ioredis load, so not this one)
 * starts tracing, serves a gRPC health check and a reflection-free unary call, talks to a real
 * redis-server inside a span, carries a context through a message map as the agent stream does,
 * and logs; the spans arrive at a real OTLP/HTTP receiver.
 */
const CHILD = `
const { startTracing, stopTracing, inSpan, injectTraceContext, extractTraceContext } = require(${JSON.stringify(join(__dirname, 'tracing.js'))});
startTracing('probe');
const Redis = require('ioredis');
const { createLogger } = require(${JSON.stringify(join(__dirname, 'logger.js'))});
(async () => {
  const redis = new Redis(process.env.PROBE_REDIS_URL);
  const log = createLogger('probe', 'info');
  let carried;
  await inSpan('probe.dispatch', { 'baton.task': 'demo::echo' }, async () => {
    await redis.set('probe', 'value-that-must-not-travel');
    log.info('inside the span');
    carried = injectTraceContext();
  });
  // The receiving side of a stream message: a new span whose parent travelled in the map.
  await inSpan('probe.execute', {}, async () => { throw new Error('task failed on purpose'); }, extractTraceContext(carried)).catch(() => undefined);
  await redis.get('outside-any-span');
  redis.disconnect();
  await stopTracing();
})();
`;

describe('tracing', () => {
  const redisServer = useRedisServer();
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
  before(async () => {
    receiver = await startOtlpReceiver();
  });
  after(() => receiver.close());

  it('is off unless an OTLP endpoint is configured, and off with OTEL_SDK_DISABLED', () => {
    assert.equal(tracingConfigured({}), false);
    assert.equal(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318' }), true);
    assert.equal(tracingConfigured({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318', OTEL_SDK_DISABLED: 'true' }), false);
    assert.equal(tracingConfigured({ OTEL_TRACES_EXPORTER: 'otlp' }), true);
  });

  it('costs nothing when off: inSpan calls its function with a span that records nothing and sets no context', async () => {
    const seen = await inSpan('never.exported', { 'baton.task': 'x' }, (span) =>
      Promise.resolve({ recording: span.isRecording(), active: trace.getActiveSpan() }),
    );
    assert.equal(seen.recording, false);
    assert.equal(seen.active, undefined, 'no context was made for the span');
    assert.deepEqual(injectTraceContext(), {});
    assert.equal(trace.getSpan(extractTraceContext({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' })), undefined);
  });

  it('shows a Redis command with its key and never a value or a script source', () => {
    assert.equal(redisStatement('set', ['baton:run:abc', 'secret stdout']), 'set baton:run:abc');
    assert.equal(redisStatement('hset', [Buffer.from('baton:node:n1'), 'facts', '{"password":"x"}']), 'hset baton:node:n1');
    assert.equal(redisStatement('evalsha', ['0123abcd', 2, 'k1', 'k2', 'secret argv']), 'evalsha 0123abcd k1 k2');
    assert.equal(redisStatement('eval', ['redis.call("set", KEYS[1], ARGV[1])', 1, 'k1', 'secret']), 'eval k1');
    assert.equal(redisStatement('script', ['load', 'return 1']), 'script');
    assert.equal(redisStatement('ping', []), 'ping');
  });

  it('exports spans over OTLP, links a context carried in a message, instruments ioredis and puts trace ids in logs', async () => {
    // Asynchronously: the receiver lives in this process and must answer while the child runs.
    const child = await promisify(execFile)(process.execPath, ['-e', CHILD], {
      env: { ...process.env, OTEL_SDK_DISABLED: '', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, PROBE_REDIS_URL: redisServer.url },
      encoding: 'utf8',
      timeout: 30_000,
    });
    const byName = (name: string): ReceivedSpan => {
      const s = receiver.spans.find((x) => x.name === name);
      assert.ok(s, `no span ${name}; got ${receiver.spans.map((x) => x.name).join(', ')}`);
      return s;
    };
    const dispatch = byName('probe.dispatch');
    const execute = byName('probe.execute');
    const redisSet = byName('set');
    assert.equal(dispatch.service, 'baton-probe');
    assert.equal(dispatch.attributes['baton.task'], 'demo::echo');
    assert.equal(redisSet.parentSpanId, dispatch.spanId, 'the redis call is a child of the span it ran in');
    assert.equal(
      redisSet.attributes['db.query.text'] ?? redisSet.attributes['db.statement'],
      'set probe',
      'the statement keeps the command and key, not the value',
    );
    assert.equal(execute.traceId, dispatch.traceId, 'the carried context continues the same trace');
    assert.equal(execute.parentSpanId, dispatch.spanId);
    assert.equal(execute.statusCode, 2);
    assert.match(execute.statusMessage, /task failed on purpose/);
    assert.ok(!receiver.spans.some((s) => s.name === 'get'), 'a redis call outside any span makes no trace');
    const logLine = child.stderr.split('\n').find((l) => l.includes('inside the span'));
    assert.ok(logLine, child.stderr);
    const parsed = JSON.parse(logLine) as { trace_id?: string; span_id?: string };
    assert.equal(parsed.trace_id, dispatch.traceId);
    assert.equal(parsed.span_id, dispatch.spanId);
  });
});
