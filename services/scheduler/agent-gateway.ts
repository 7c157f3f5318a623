import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { AgentGatewayServiceServer, ConnectRequest, ConnectResponse } from '../../gen/baton/v1/agent_gateway_service';
import { UnavailableError } from '../../lib/errors';
import { forEachSliced } from '../../lib/time-slice';
import type { MethodRoles } from '../../lib/method-roles';
import { AgentSession, type AgentSessionOptions } from './agent-session';

/**
 * Who may call the AgentGatewayService (lib/method-roles.ts): agents only, each as the
 * node its certificate names (AgentSession checks Hello.identity against it).
 */
export const AGENT_GATEWAY_ROLES: MethodRoles = { default: ['agent'] };

/** The AgentGatewayService: one AgentSession per Connect stream. */
export class AgentGateway {
  /** Every open session, greeted or not. */
  private readonly sessions = new Set<AgentSession>();

  constructor(private readonly options: AgentSessionOptions) {}

  /** The gRPC handlers to register. */
  implementation(): AgentGatewayServiceServer {
    return {
      connect: (call: ServerDuplexStream<ConnectRequest, ConnectResponse>) => {
        const session = new AgentSession(call, this.options);
        this.sessions.add(session);
        void session.closed.then(() => this.sessions.delete(session));
        session.start();
      },
    };
  }

  /**
   * Ends every agent stream (on drain, or when this replica lost its lease): the agents
   * reconnect, to another scheduler if there is one. Resolves once every node has been marked
   * offline.
   */
  async closeAll(reason = new UnavailableError('the scheduler is shutting down; reconnect')): Promise<void> {
    // In time slices: ending 100,000 streams in one loop held the event loop for half a minute,
    // so a replica that had just lost its lease could not take a new one meanwhile.
    const closing: Array<Promise<void>> = [];
    await forEachSliced([...this.sessions], (s) => closing.push(s.close(reason, { draining: true })));
    await Promise.all(closing);
  }
}
