/**
 * Whether the standard `OTEL_*` variables ask for traces, apart from lib/tracing.ts so that a
 * process can ask without loading `@opentelemetry/api` (the `baton` CLI's start-up counts).
 */
export function tracingConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  if ((env.OTEL_SDK_DISABLED ?? '').toLowerCase() === 'true') return false;
  if ((env.OTEL_TRACES_EXPORTER ?? '').toLowerCase() === 'none') return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || (env.OTEL_TRACES_EXPORTER ?? '').toLowerCase() === 'otlp');
}
