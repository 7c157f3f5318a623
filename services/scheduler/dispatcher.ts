import type { DownloadCommand, RunCommand } from '../../gen/baton/v1/agent_gateway_service';
import type { AgentRegistry } from './agent-registry';
import type { AgentSession } from './agent-session';
import type { TraceContext } from './agent-session';
import { distributeFiles, type DownloadFailure } from './download-gate';

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
 * as not connected. `run` and `cancel` send to every node before their first await, so a caller
 * that checks a cancel flag right before calling sees either none or all of the nodes sent to.
 */
export class LocalDispatcher implements Dispatcher {
  constructor(private readonly registry: AgentRegistry<AgentSession>) {}

  download(nodes: string[], command: DownloadCommand, timeoutMs: number, traceContext: TraceContext): Promise<DownloadFailure[]> {
    return distributeFiles(this.registry, nodes, command, timeoutMs, traceContext);
  }

  run(nodes: string[], command: RunCommand, traceContext: TraceContext): Promise<string[]> {
    return Promise.resolve(this.runNow(nodes, command, traceContext));
  }

  cancel(nodes: string[], taskId: string): Promise<string[]> {
    return Promise.resolve(this.cancelNow(nodes, taskId));
  }

  /** `run`, synchronously: the nodes the command could not be sent to. */
  runNow(nodes: string[], command: RunCommand, traceContext: TraceContext): string[] {
    const lost: string[] = [];
    for (const node of nodes) {
      if (this.registry.get(node)?.send({ $case: 'run', value: command }, traceContext) !== true) lost.push(node);
    }
    return lost;
  }

  /** `cancel`, synchronously: the nodes reached, sorted. */
  cancelNow(nodes: string[], taskId: string): string[] {
    return nodes.filter((node) => this.registry.get(node)?.send({ $case: 'cancel', value: { taskId } }) === true).sort();
  }
}
