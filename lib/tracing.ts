import { tracingConfigured } from './tracing-config';
import { context, propagation, ROOT_CONTEXT, SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';

/**
 * OpenTelemetry for every Baton process (issue 8). Configured only by the standard `OTEL_*`
 * variables: tracing is on when `OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, or `OTEL_TRACES_EXPORTER` is `otlp`, and
 * `OTEL_SDK_DISABLED` is not `true`. Export is OTLP http/protobuf (Jaeger takes it on 4318).
 *
 * Off costs nothing: no SDK module is even loaded, and `@opentelemetry/api` hands out no-op
 * spans. On, `startTracing` must run before `@grpc/grpc-js` and `ioredis` are required, because
 * the instrumentations patch `require` (toolchain.md §3): every main calls it on its first line.
 * TypeScript keeps the order of statements in CommonJS output, so the imports after that call
 * load after it.
 */

export { tracingConfigured } from './tracing-config';

/** The tracer every Baton span comes from. */
export const tracer: Tracer = trace.getTracer('baton');

/** gRPC methods that make no spans: health checks and reflection would swamp every trace. */
export const UNTRACED_GRPC_METHODS = ['Check', 'Watch', 'List', 'ServerReflectionInfo'];

/** Flushes and stops the SDK; a no-op when tracing is off. */
let shutdown: () => Promise<void> = () => Promise.resolve();

/**
 * Starts tracing for the process `baton-<piece>` when configured (service name overridable with
 * `OTEL_SERVICE_NAME`). Returns whether it started.
 */
export function startTracing(piece: string): boolean {
  if (!tracingConfigured()) return false;
  // Loaded here, not at the top: a process without tracing never pays for the SDK.
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node') as typeof import('@opentelemetry/sdk-trace-node');
  const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base') as typeof import('@opentelemetry/sdk-trace-base');
  const { resourceFromAttributes } = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
  const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto') as typeof import('@opentelemetry/exporter-trace-otlp-proto');
  const { registerInstrumentations } = require('@opentelemetry/instrumentation') as typeof import('@opentelemetry/instrumentation');
  const { GrpcInstrumentation } = require('@opentelemetry/instrumentation-grpc') as typeof import('@opentelemetry/instrumentation-grpc');
  const { IORedisInstrumentation } = require('@opentelemetry/instrumentation-ioredis') as typeof import('@opentelemetry/instrumentation-ioredis');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': process.env.OTEL_SERVICE_NAME || `baton-${piece}`, 'service.namespace': 'baton' }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  // register() installs the AsyncLocalStorage context manager and the W3C propagator.
  provider.register();
  registerInstrumentations({
    instrumentations: [
      new GrpcInstrumentation({ ignoreGrpcMethods: UNTRACED_GRPC_METHODS }),
      // Redis calls outside any span (heartbeats, sweeps) make no trace of their own.
      new IORedisInstrumentation({ requireParentSpan: true }),
    ],
  });
  shutdown = () => provider.shutdown();
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

/** The W3C trace context of `span` (or of the active span) as a map for a message's `trace_context`. */
export function injectTraceContext(span?: Span): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(span ? trace.setSpan(context.active(), span) : context.active(), carrier);
  return carrier;
}

/** The context carried by a message's `trace_context` map; the root context when it is empty. */
export function extractTraceContext(carrier: Record<string, string> | undefined): Context {
  return carrier && Object.keys(carrier).length > 0 ? propagation.extract(ROOT_CONTEXT, carrier) : ROOT_CONTEXT;
}

/**
 * Runs `fn` inside a new active span that ends when `fn` settles; an error sets the span's
 * status and is rethrown. `parent` defaults to the active context.
 */
export async function inSpan<T>(name: string, attributes: Record<string, string | number | boolean>, fn: (span: Span) => Promise<T>, parent: Context = context.active()): Promise<T> {
  return tracer.startActiveSpan(name, { attributes }, parent, async (span) => {
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

/** Marks a span failed with the error's message. */
export function recordFailure(span: Span, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
  if (err instanceof Error) span.recordException(err);
}

/** Trace and span id of the active span, for log lines; empty when there is none. */
export function activeTraceIds(): { trace_id: string; span_id: string } | Record<string, never> {
  const span = trace.getSpan(context.active());
  if (!span) return {};
  const { traceId, spanId, traceFlags } = span.spanContext();
  // A non-recording no-op span has the all-zero ids of an invalid context.
  if (!trace.isSpanContextValid({ traceId, spanId, traceFlags })) return {};
  return { trace_id: traceId, span_id: spanId };
}
