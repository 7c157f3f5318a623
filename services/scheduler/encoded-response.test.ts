import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectResponse } from '../../gen/baton/v1/agent_gateway_service';
import { AgentGatewayServiceDefinition, EncodedResponse } from './encoded-response';

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
