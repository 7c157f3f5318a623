/**
 * A run command this scheduler sent to a node whose final result it has not stored yet: what
 * lets it say, when the node's agent disconnects, which runs show the node as away: the
 * operator sees the node's run entry say its agent is disconnected instead of a silent wait.
 */
export interface OutstandingRun {
  taskId: string;
  /** When the run command went out, in ms since the epoch (for expiry). */
  sentAtMs: number;
  /** The TaskStarted's start time; undefined while the task waits for a slot on the node. */
  startTime?: Date;
  /** True while the run shows the node as disconnected (set on disconnect, cleared on reconnect). */
  away: boolean;
}
