import type { DownloadCommand } from '../../gen/baton/v1/agent_gateway_service';
import { NodeState } from '../../gen/baton/v1/run';
import type { AgentRegistry } from './agent-registry';
import type { AgentSession } from './agent-session';
import { EncodedResponse } from './encoded-response';
import { forEachSliced } from '../../lib/time-slice';

/** Seconds every node gets to download and verify the task files before the gate closes. */
export const DEFAULT_DOWNLOAD_TIMEOUT_S = 60;

/** Most nodes named in a gate failure message; the rest are counted. */
export const MAX_NODES_IN_GATE_MESSAGE = 20;

/** A node that did not pass the gate. */
export interface DownloadFailure {
  node: string;
  /** FAILED when the agent reported an error, NO_RESPONSE when it did not answer (or is not connected). */
  state: NodeState.NODE_STATE_FAILED | NodeState.NODE_STATE_NO_RESPONSE;
  /** The agent's error, or why there was no answer; recorded as the node's statusmsg. */
  detail: string;
  /**
   * True when the node's session here ended before its agent answered, or was not ready when
   * its turn came: the agent may be reconnecting (sent to another replica by the rebalancer, its
   * connection broke), and a replica waits for it where it lands rather than failing it.
   */
  disconnected?: boolean;
}

/**
 * The "all nodes hold identical files" gate (docs/choria-compat.md §1 step 6): sends the
 * DownloadCommand to every node and waits for every DownloadResult. Resolves with the nodes
 * that failed or did not answer within `timeoutMs`, sorted by node; empty means the gate is open.
 */
export async function distributeFiles(
  registry: AgentRegistry<AgentSession>,
  nodes: string[],
  command: DownloadCommand,
  timeoutMs: number,
  traceContext: Record<string, string> = {},
): Promise<DownloadFailure[]> {
  const waits: Array<Promise<DownloadFailure | undefined>> = [];
  const encoded = EncodedResponse.of({ traceContext, message: { $case: 'download', value: command } });
  // In time slices: a gate over every node of a large fleet must not hold the event loop.
  await forEachSliced(nodes, (node) => {
    const session = registry.get(node);
    if (!session?.ready) {
      waits.push(
        Promise.resolve({
          node,
          state: NodeState.NODE_STATE_NO_RESPONSE,
          detail: 'no response: the node is not connected to this scheduler',
          disconnected: true,
        }),
      );
      return;
    }
    waits.push(
      session.download(command, timeoutMs, traceContext, encoded).then((result): DownloadFailure | undefined => {
        if (!result && !session.ready)
          return { node, state: NodeState.NODE_STATE_NO_RESPONSE, detail: 'no response: the node disconnected before it answered', disconnected: true };
        if (!result)
          return { node, state: NodeState.NODE_STATE_NO_RESPONSE, detail: `no response to the download command within ${Math.round(timeoutMs / 1000)} s` };
        if (!result.ok) return { node, state: NodeState.NODE_STATE_FAILED, detail: result.error || 'the download failed without an error message' };
        return undefined;
      }),
    );
  });
  const outcomes = await Promise.all(waits);
  return outcomes.filter((o): o is DownloadFailure => o !== undefined).sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
}

/** The run's failure reason: `could not download the task onto all nodes: <node>: <error>; <node>: no response`. */
export function gateFailureReason(failures: DownloadFailure[]): string {
  const shown = failures
    .slice(0, MAX_NODES_IN_GATE_MESSAGE)
    .map((f) => `${f.node}: ${f.state === NodeState.NODE_STATE_NO_RESPONSE ? 'no response' : f.detail.replace(/\s*\n\s*/g, ' ')}`);
  const more = failures.length > MAX_NODES_IN_GATE_MESSAGE ? `; and ${failures.length - MAX_NODES_IN_GATE_MESSAGE} more` : '';
  return `could not download the task onto all nodes: ${shown.join('; ')}${more}`;
}
