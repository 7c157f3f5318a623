import { AgentGatewayServiceService, ConnectResponse } from '../../gen/baton/v1/agent_gateway_service';

/**
 * A Connect response encoded once, written as it is to every agent stream it goes to. A run's
 * DownloadCommand and RunCommand are the same message for every node of the run (one request
 * id, one trace context), so encoding them per node was the same work once per node.
 */
export class EncodedResponse {
  private constructor(
    /** The message, for whoever needs to read what was sent. */
    readonly message: ConnectResponse,
    /** Its protobuf encoding. */
    readonly bytes: Buffer,
  ) {}

  static of(message: ConnectResponse): EncodedResponse {
    return new EncodedResponse(message, AgentGatewayServiceService.connect.responseSerialize(message));
  }
}

/** AgentGatewayService as the scheduler serves it: a Connect response may be written as an EncodedResponse. */
export const AgentGatewayServiceDefinition = {
  ...AgentGatewayServiceService,
  connect: {
    ...AgentGatewayServiceService.connect,
    responseSerialize: (value: ConnectResponse | EncodedResponse): Buffer =>
      value instanceof EncodedResponse ? value.bytes : AgentGatewayServiceService.connect.responseSerialize(value),
  },
} as const;
