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

/** How long one encoded Heartbeat answer is written to every agent that sends a Heartbeat, in ms. */
const HEARTBEAT_ANSWER_REUSE_MS = 1000;

/** The current answer per interval given in it (0: none). */
const heartbeatAnswers = new Map<number, { atMs: number; answer: EncodedResponse }>();

/**
 * The scheduler's answer to a Heartbeat (docs/agent-protocol.md §2), giving `intervalS` (0:
 * none), encoded once a second per interval and written as it is to every agent heard within
 * that second: a connected fleet's heartbeats are most of what an idle scheduler does, and the
 * answers differ only by a `send_time` that no agent needs finer than that.
 */
export function heartbeatAnswer(intervalS: number, nowMs = Date.now()): EncodedResponse {
  const cached = heartbeatAnswers.get(intervalS);
  if (cached && nowMs >= cached.atMs && nowMs - cached.atMs < HEARTBEAT_ANSWER_REUSE_MS) return cached.answer;
  const answer = EncodedResponse.of({ traceContext: {}, message: { $case: 'heartbeat', value: { sendTime: new Date(nowMs), runningTasks: 0, intervalS } } });
  heartbeatAnswers.set(intervalS, { atMs: nowMs, answer });
  return answer;
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
