import type { DownloadCommand, RunCommand } from '../../gen/baton/v1/agent_gateway_service';
import type { AgentRegistry } from './agent-registry';
import type { AgentSession } from './agent-session';
import type { TraceContext } from './agent-session';
import { distributeFiles, type DownloadFailure } from './download-gate';
import { EncodedResponse } from './encoded-response';
import { forEachSliced } from '../../lib/time-slice';

/**
 * How the orchestrator and CancelRun reach agents, wherever their streams are held: this
 * scheduler's own sessions (LocalDispatcher), or, with several scheduler replicas, the replica
 * each node is connected to (StreamDispatcher, through per-replica Redis streams). Each method
 * takes the command once for all its nodes.
 */
export interface Dispatcher {
  /**
   * The download gate: sends `command` to every node and waits for every DownloadResult.
   * Resolves with the nodes that failed or did not answer within `timeoutMs`, sorted by node;
   * empty means every node holds the files. Never rejects for a node's sake.
   */
  download(nodes: string[], command: DownloadCommand, timeoutMs: number, traceContext: TraceContext): Promise<DownloadFailure[]>;
  /**
   * Sends the run command to every node. Resolves with the nodes it could not be sent to (not
   * connected to any scheduler, or left before it went out), in no particular order. A node
   * reached twice runs the task once: agents never run a task id twice.
   */
  run(nodes: string[], command: RunCommand, traceContext: TraceContext): Promise<string[]>;
  /** Sends a CancelCommand of `taskId` to every node; resolves with the nodes it reached, sorted. */
  cancel(nodes: string[], taskId: string): Promise<string[]>;
}

/**
 * A Dispatcher over this scheduler's own agent sessions only: a node connected elsewhere counts
 * as not connected. `run` and `cancel` go through the nodes in time slices (lib/time-slice.ts),
 * so a run over every node of a large fleet never holds the event loop long enough to miss a
 * lease renewal; a caller that must keep a cancel from overtaking them marks the run as sending
 * meanwhile (run-state.ts `sending`).
 */
export class LocalDispatcher implements Dispatcher {
  constructor(private readonly registry: AgentRegistry<AgentSession>) {}

  download(nodes: string[], command: DownloadCommand, timeoutMs: number, traceContext: TraceContext): Promise<DownloadFailure[]> {
    return distributeFiles(this.registry, nodes, command, timeoutMs, traceContext);
  }

  /** Sends the run command to each node connected here; resolves with the nodes it could not be sent to. */
  async run(nodes: string[], command: RunCommand, traceContext: TraceContext): Promise<string[]> {
    const lost: string[] = [];
    const encoded = EncodedResponse.of({ traceContext, message: { $case: 'run', value: command } });
    await forEachSliced(nodes, (node) => {
      if (this.registry.get(node)?.send(encoded) !== true) lost.push(node);
    });
    return lost;
  }

  /** Sends the cancel to each node connected here; resolves with the nodes reached, sorted. */
  async cancel(nodes: string[], taskId: string): Promise<string[]> {
    const reached: string[] = [];
    const message = EncodedResponse.of({ traceContext: {}, message: { $case: 'cancel', value: { taskId } } });
    await forEachSliced(nodes, (node) => {
      if (this.registry.get(node)?.send(message) === true) reached.push(node);
    });
    return reached.sort();
  }
}
