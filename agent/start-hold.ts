/**
 * How long an agent holds a task's TaskStarted before sending it, in ms. Many tasks of a large
 * run end sooner (a check, a fact, a service poke: a shell or Python script starts and exits in
 * milliseconds), and their TaskFinished alone says everything a TaskStarted would (`start_time`
 * and `runtime` are in the result): each TaskStarted not sent spares the scheduler a message to
 * read and a RUNNING to record, per node and per run. The cost is that a task running longer
 * shows RUNNING a second after it started, which a person following a run does not miss
 * (docs/agent-protocol.md §5).
 */
export const START_HOLD_MS = 1000;

/**
 * Holds each task's TaskStarted for a while and drops it when the task's TaskFinished comes
 * first. What is held is lost when the agent stops, as it would be if the connection were down:
 * the result is sent with the next Hello either way.
 */
export class StartHold {
  private readonly held = new Map<string, NodeJS.Timeout>();

  /** Calls `send` once START_HOLD_MS have passed, unless `finished` says task `taskId` ended first. */
  started(taskId: string, send: () => void): void {
    clearTimeout(this.held.get(taskId));
    const timer = setTimeout(() => {
      this.held.delete(taskId);
      send();
    }, START_HOLD_MS);
    // A held notice never keeps the process alive: the result says when the task started.
    timer.unref();
    this.held.set(taskId, timer);
  }

  /** The task ended: a TaskStarted still held for it is never sent. */
  finished(taskId: string): void {
    const timer = this.held.get(taskId);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.held.delete(taskId);
  }

  /** Drops every held TaskStarted (the agent stops). */
  clear(): void {
    for (const timer of this.held.values()) clearTimeout(timer);
    this.held.clear();
  }
}
