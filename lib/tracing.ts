import { tracingConfigured } from './tracing-config';
import { context, INVALID_SPAN_CONTEXT, propagation, ROOT_CONTEXT, SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';

/**
 * OpenTelemetry for every Baton process, through the SDK's NodeSDK and configured only by the
 * standard `OTEL_*` variables: tracing is on when `OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, or `OTEL_TRACES_EXPORTER` is `otlp`, and
 * `OTEL_SDK_DISABLED` is not `true`. Export is OTLP (http/protobuf unless
 * `OTEL_EXPORTER_OTLP_PROTOCOL` says otherwise; Jaeger takes it on 4318); `OTEL_SERVICE_NAME`,
 * `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*` and the rest apply as the SDK
 * documents them. Metrics stay with Prometheus (lib/metrics.ts) and logs with stderr, so the SDK
 * exports neither.
 *
 * Off costs nothing: no SDK module is even loaded, `inSpan` calls its function directly and no
 * trace context is built or carried. On, `startTracing` must run before `@grpc/grpc-js` and
 * `ioredis` are required, because the instrumentations patch `require`: every main calls it on
 * its first line. TypeScript keeps the order of statements in CommonJS output, so the imports
 * after that call load after it.
 */

export { tracingConfigured } from './tracing-config';

/** The tracer every Baton span comes from. */
export const tracer: Tracer = trace.getTracer('baton');

/**
 * gRPC methods that make no spans: health checks and reflection would swamp every trace, and an
 * agent's Connect stream lasts as long as the agent: one span that never ends says nothing, and
 * what happens on the stream for a run joins that run's trace through the context each message
 * carries.
 */
export const UNTRACED_GRPC_METHODS = ['Check', 'Watch', 'List', 'ServerReflectionInfo', 'Connect'];

/** Whether `startTracing` started the SDK; every helper below is a plain call while it is false. */
let enabled = false;

/** The active context with instrumentation switched off (set when tracing starts). */
let suppressed: (() => Context) | undefined;

/** Flushes and stops the SDK; a no-op when tracing is off. */
let shutdown: () => Promise<void> = () => Promise.resolve();

/** The span handed to `inSpan`'s function when tracing is off: records nothing. */
const NO_SPAN: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** Redis commands whose first argument is not a key, shown by name alone. */
const KEYLESS_REDIS_COMMANDS = new Set([
  'ping',
  'info',
  'select',
  'client',
  'script',
  'multi',
  'exec',
  'discard',
  'quit',
  'auth',
  'hello',
  'config',
  'time',
  'dbsize',
  'flushdb',
  'flushall',
  'scan',
  'publish',
]);

/**
 * What a Redis span says its statement was: the command and the key(s) it touched, never a
 * value. Values are task output, facts and inputs (secrets a task printed), and EVAL would carry
 * a whole Lua source; keys are built by RedisKeys from ids and names only.
 */
export function redisStatement(command: string, args: readonly unknown[]): string {
  const name = command.toLowerCase();
  const text = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' ? String(v) : Buffer.isBuffer(v) ? v.toString('utf8') : '?');
  if (name === 'eval' || name === 'evalsha' || name === 'eval_ro' || name === 'evalsha_ro' || name === 'fcall' || name === 'fcall_ro') {
    const count = Number(args[1]);
    const keys = Number.isInteger(count) && count > 0 ? args.slice(2, 2 + count).map(text) : [];
    // The SHA1 names the script without its source; an EVAL source is left out.
    const script = name.startsWith('evalsha') || name.startsWith('fcall') ? [text(args[0])] : [];
    return [name, ...script, ...keys].join(' ');
  }
  if (KEYLESS_REDIS_COMMANDS.has(name) || args.length === 0) return name;
  return `${name} ${text(args[0])}`;
}

/**
 * Starts tracing for the process `baton-<piece>` when configured (service name overridable with
 * `OTEL_SERVICE_NAME` or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`). Returns whether it started.
 */
export function startTracing(piece: string): boolean {
  if (!tracingConfigured()) return false;
  // Loaded here, not at the top: a process without tracing never pays for the SDK.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { NodeSDK } = require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node');
  const { suppressTracing } = require('@opentelemetry/core') as typeof import('@opentelemetry/core');
  const { defaultResource, envDetector, hostDetector, resourceFromAttributes } =
    require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
  const { GrpcInstrumentation } = require('@opentelemetry/instrumentation-grpc') as typeof import('@opentelemetry/instrumentation-grpc');
  const { IORedisInstrumentation } = require('@opentelemetry/instrumentation-ioredis') as typeof import('@opentelemetry/instrumentation-ioredis');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const sdk = new NodeSDK({
    // Baton's name for the process; the environment's resource (OTEL_SERVICE_NAME,
    // OTEL_RESOURCE_ATTRIBUTES) is merged over it when the SDK starts.
    resource: defaultResource().merge(resourceFromAttributes({ 'service.name': `baton-${piece}`, 'service.namespace': 'baton' })),
    // Not the process detector: it exports the command line, and a CLI's arguments carry task input.
    ...(process.env.OTEL_NODE_RESOURCE_DETECTORS ? {} : { resourceDetectors: [envDetector, hostDetector] }),
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [
      new GrpcInstrumentation({ ignoreGrpcMethods: UNTRACED_GRPC_METHODS }),
      // Redis calls outside any span (heartbeats, sweeps) make no trace of their own.
      new IORedisInstrumentation({ requireParentSpan: true, dbStatementSerializer: redisStatement }),
    ],
  });
  sdk.start();
  enabled = true;
  suppressed = () => suppressTracing(context.active());
  shutdown = () => sdk.shutdown();
  return true;
}

/** Flushes pending spans and stops tracing; call before the process exits. Never throws. */
export async function stopTracing(): Promise<void> {
  try {
    await shutdown();
  } catch {
    // An unreachable collector must not turn a clean exit into a failure.
  }
}

/** The W3C trace context of `span` (or of the active span) as a map for a message's `trace_context`; empty when tracing is off. */
export function injectTraceContext(span?: Span): Record<string, string> {
  const carrier: Record<string, string> = {};
  if (!enabled) return carrier;
  propagation.inject(span ? trace.setSpan(context.active(), span) : context.active(), carrier);
  return carrier;
}

/** The context carried by a message's `trace_context` map; the root context when it is empty or tracing is off. */
export function extractTraceContext(carrier: Record<string, string> | undefined): Context {
  return enabled && carrier && Object.keys(carrier).length > 0 ? propagation.extract(ROOT_CONTEXT, carrier) : ROOT_CONTEXT;
}

/**
 * Runs `fn` inside a new active span that ends when `fn` settles; an error sets the span's
 * status and is rethrown. `parent` defaults to the active context. With tracing off, `fn` is
 * simply called (with a span that records nothing).
 */
export async function inSpan<T>(
  name: string,
  attributes: Record<string, string | number | boolean>,
  fn: (span: Span) => Promise<T>,
  parent?: Context,
): Promise<T> {
  if (!enabled) return fn(NO_SPAN);
  return tracer.startActiveSpan(name, { attributes }, parent ?? context.active(), async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      recordFailure(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/**
 * Runs `fn` with instrumentation switched off: work that belongs to a connection rather than to
 * a run (heartbeats, registrations) makes no spans even inside a traced call. A plain call when
 * tracing is off.
 */
export function withoutSpans<T>(fn: () => T): T {
  return suppressed ? context.with(suppressed(), fn) : fn();
}

/** Marks a span failed with the error's message. */
export function recordFailure(span: Span, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
  if (err instanceof Error) span.recordException(err);
}

/** Trace and span id of the active span, for log lines; empty when there is none. */
export function activeTraceIds(): { trace_id: string; span_id: string } | Record<string, never> {
  if (!enabled) return {};
  const span = trace.getSpan(context.active());
  if (!span) return {};
  const { traceId, spanId, traceFlags } = span.spanContext();
  // A non-recording no-op span has the all-zero ids of an invalid context.
  if (!trace.isSpanContextValid({ traceId, spanId, traceFlags })) return {};
  return { trace_id: traceId, span_id: spanId };
}
