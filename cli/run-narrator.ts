import { RunState } from '../gen/baton/v1/run';
import type { Clients } from './connection';
import type { ProgressLine } from './progress-line';
import { countNodes, RunFollower } from './run-follower';
import type { RunLocator } from './run-locator';

/** Says mco's lines once each, in order, however they are reached (live or after the call). */
export class RunNarrator {
  private said = new Set<string>();

  constructor(
    private readonly say: (line?: string) => void,
    private readonly progress: ProgressLine,
    private readonly task: string,
    private readonly files: number,
    private readonly waitS: number,
  ) {}

  private once(key: string, line: string): void {
    if (this.said.has(key)) return;
    this.said.add(key);
    this.progress.clear();
    this.say(line);
  }

  /** mco's first line, with the task id: it is printed as soon as it exists. */
  attempting(nodes: number, taskId: string): void {
    this.once('attempting', `Attempting to download and run task ${this.task} on ${nodes} nodes (task id ${taskId})`);
    this.once('blank', '');
  }

  downloading(): void {
    this.once('downloading', `Downloading and verifying ${this.files} file(s) from the metadata service to all nodes`);
  }

  running(background: boolean): void {
    this.once('running', background ? `Starting task ${this.task} in the background` : `Running task ${this.task} and waiting up to ${this.waitS} seconds for it to complete`);
  }
}

/**
 * Says the first line, with the task id, as soon as the run is recorded; on a terminal also
 * draws the run's progress from its event log: the downloads as `i / N`, then the finished
 * nodes as mco's bar.
 */
export function followLive(clients: Clients, locator: RunLocator, narrator: RunNarrator, progress: ProgressLine, background: boolean): { stop(): void } {
  let stopped = false;
  let follower: RunFollower | undefined;
  const follow = async (): Promise<void> => {
    const run = await locator.found;
    if (!run || stopped) return;
    narrator.attempting(run.nodes.length, run.taskId);
    if (!progress.enabled) return;
    const total = run.nodes.length;
    const draw = (state: RunState, view: Parameters<typeof countNodes>[0]): void => {
      const { downloaded, finished } = countNodes(view);
      if (state === RunState.RUN_STATE_DOWNLOADING) progress.update(`${downloaded} / ${total}`);
      else if (state === RunState.RUN_STATE_RUNNING) progress.bar(finished, total);
    };
    follower = new RunFollower(clients, run.taskId, run.nodes, {
      onRunState: (state, view) => {
        if (state === RunState.RUN_STATE_DOWNLOADING) narrator.downloading();
        if (state === RunState.RUN_STATE_RUNNING) {
          narrator.downloading();
          narrator.running(background);
        }
        draw(state, view);
      },
      onNode: (_, view) => draw(view.state, view),
    });
    await follower.done;
  };
  // Progress is a nicety: a failure to draw it never fails the run.
  follow().catch(() => undefined);
  return {
    stop() {
      stopped = true;
      follower?.stop();
      progress.clear();
    },
  };
}
