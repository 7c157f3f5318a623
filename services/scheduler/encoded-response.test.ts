import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectResponse } from '../../gen/baton/v1/agent_gateway_service';
import { AgentGatewayServiceDefinition, EncodedResponse, heartbeatAnswer } from './encoded-response';

describe('EncodedResponse', () => {
  const message: ConnectResponse = {
    traceContext: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    message: { $case: 'download', value: { requestId: 'r1', taskId: 'a'.repeat(32), task: 'demo::echo', environment: 'production', files: [] } },
  };
  const serialize = AgentGatewayServiceDefinition.connect.responseSerialize;

  it('is written as the same bytes as the message it encodes, and keeps the message', () => {
    const encoded = EncodedResponse.of(message);
    assert.deepEqual(serialize(encoded), serialize(message));
    assert.deepEqual(ConnectResponse.decode(serialize(encoded)), message);
    assert.equal(encoded.message, message);
  });

  it('is encoded once, whatever number of streams it is written to', () => {
    const encoded = EncodedResponse.of(message);
    assert.equal(serialize(encoded), serialize(encoded));
  });
});

describe('heartbeatAnswer', () => {
  const serialize = AgentGatewayServiceDefinition.connect.responseSerialize;
  const decoded = (answer: EncodedResponse) => ConnectResponse.decode(serialize(answer)).message;

  it('is a Heartbeat giving the interval, sent at the time it was encoded', () => {
    const atMs = Date.UTC(2026, 11, 5, 12, 0, 0);
    assert.deepEqual(decoded(heartbeatAnswer(40, atMs)), { $case: 'heartbeat', value: { sendTime: new Date(atMs), runningTasks: 0, intervalS: 40 } });
  });

  it('is encoded once a second per interval, and again for another interval or a later second', () => {
    const atMs = Date.UTC(2026, 11, 5, 12, 0, 10);
    const first = heartbeatAnswer(50, atMs);
    assert.equal(heartbeatAnswer(50, atMs + 999), first, 'the same answer within the second');
    assert.notEqual(heartbeatAnswer(51, atMs + 999), first, 'another interval, another answer');
    const later = heartbeatAnswer(50, atMs + 1000);
    assert.notEqual(later, first);
    assert.deepEqual(decoded(later), { $case: 'heartbeat', value: { sendTime: new Date(atMs + 1000), runningTasks: 0, intervalS: 50 } });
  });
});
