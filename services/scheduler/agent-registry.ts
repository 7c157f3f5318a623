import type { AgentSession } from './agent-session';

/**
 * The live agent sessions of this scheduler by node identity. A second connection for an
 * identity replaces the first: the newest agent process wins (agent protocol §1), and the
 * caller ends the replaced session's stream.
 */
export class AgentRegistry {
  private readonly sessions = new Map<string, AgentSession>();

  /** Makes `session` the live session of `identity`; returns the session it replaced, if any. */
  register(identity: string, session: AgentSession): AgentSession | undefined {
    const previous = this.sessions.get(identity);
    this.sessions.set(identity, session);
    return previous === session ? undefined : previous;
  }

  /** Removes `session` if it is still the live one of `identity`; true when it was. */
  remove(identity: string, session: AgentSession): boolean {
    if (this.sessions.get(identity) !== session) return false;
    this.sessions.delete(identity);
    return true;
  }

  /** The live session of a node, if it is connected here. */
  get(identity: string): AgentSession | undefined {
    return this.sessions.get(identity);
  }

  /** Every live session. */
  all(): AgentSession[] {
    return [...this.sessions.values()];
  }
}
