import { createServer } from 'node:http';
import protobuf from 'protobufjs';

/**
 * A tiny OTLP/HTTP trace receiver for tests (no Jaeger in CI, docs/toolchain.md "Tracing"): accepts
 * `POST /v1/traces` in http/protobuf, as Baton's exporter sends it, and keeps every span.
 * The messages below are the subset of opentelemetry-proto's trace.proto and common.proto the
 * tests read, with the field numbers of the published protocol.
 */
const OTLP_SUBSET = `
syntax = "proto3";
package otlp;
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeSpans { Scope scope = 1; repeated Span spans = 2; }
message Scope { string name = 1; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; bytes parent_span_id = 4; string name = 5; int32 kind = 6;
  repeated KeyValue attributes = 9; Status status = 15;
}
message Status { string message = 2; int32 code = 3; }
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue {
  oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; }
}
`;

const ExportRequest = protobuf.parse(OTLP_SUBSET, { keepCase: true }).root.lookupType('otlp.ExportTraceServiceRequest');

/** A received span, flattened. */
export interface ReceivedSpan {
  /** service.name of the process that sent it. */
  service: string;
  /** Every resource attribute of the process that sent it. */
  resource: Record<string, string | number | boolean>;
  name: string;
  traceId: string;
  spanId: string;
  /** Empty for a root span. */
  parentSpanId: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  attributes: Record<string, string | number | boolean>;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  statusCode: number;
  statusMessage: string;
}

interface AnyValue {
  string_value?: string;
  bool_value?: boolean;
  int_value?: number | { toNumber(): number };
  double_value?: number;
}
interface KeyValue {
  key: string;
  value?: AnyValue;
}
interface DecodedSpan {
  trace_id: Uint8Array;
  span_id: Uint8Array;
  parent_span_id?: Uint8Array;
  name: string;
  kind?: number;
  attributes?: KeyValue[];
  status?: { message?: string; code?: number };
}
interface Decoded {
  resource_spans?: { resource?: { attributes?: KeyValue[] }; scope_spans?: { spans?: DecodedSpan[] }[] }[];
}

function plain(v: AnyValue | undefined): string | number | boolean {
  if (!v) return '';
  if (v.string_value !== undefined) return v.string_value;
  if (v.bool_value !== undefined) return v.bool_value;
  if (v.int_value !== undefined) return typeof v.int_value === 'number' ? v.int_value : v.int_value.toNumber();
  return v.double_value ?? '';
}

function attributes(list: KeyValue[] | undefined): Record<string, string | number | boolean> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, plain(kv.value)]));
}

const hex = (b: Uint8Array | undefined) => Buffer.from(b ?? []).toString('hex');

/** Starts the receiver on 127.0.0.1 at a free port; `endpoint` goes into OTEL_EXPORTER_OTLP_ENDPOINT. */
export async function startOtlpReceiver(): Promise<{ endpoint: string; spans: ReceivedSpan[]; close: () => Promise<void> }> {
  const spans: ReceivedSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      const decoded = ExportRequest.toObject(ExportRequest.decode(Buffer.concat(chunks))) as Decoded;
      for (const rs of decoded.resource_spans ?? []) {
        const resource = attributes(rs.resource?.attributes);
        const service = String(resource['service.name'] ?? '');
        for (const ss of rs.scope_spans ?? []) {
          for (const s of ss.spans ?? []) {
            spans.push({
              service,
              resource,
              name: s.name,
              traceId: hex(s.trace_id),
              spanId: hex(s.span_id),
              parentSpanId: hex(s.parent_span_id),
              kind: s.kind ?? 0,
              attributes: attributes(s.attributes),
              statusCode: s.status?.code ?? 0,
              statusMessage: s.status?.message ?? '',
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  const port = address && typeof address === 'object' ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
