import { RunState } from '../gen/baton/v1/run';
import type { ProgressLine } from './progress-line';

/** Says mco's lines once each, in order, however they are reached (live or after the call). */
export class RunNarrator {
  private said = new Set<string>();
  private silent = false;

  constructor(
    private readonly say: (line?: string) => void,
    private readonly progress: ProgressLine,
    private readonly task: string,
    private readonly files: number,
    private readonly waitS: number,
  ) {}

  /** Says nothing more (the operator pressed Ctrl-C: the CLI is leaving). */
  quiet(): void {
    this.silent = true;
  }

  private once(key: string, line: string): void {
    if (this.silent || this.said.has(key)) return;
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
    this.once(
      'running',
      background ? `Starting task ${this.task} in the background` : `Running task ${this.task} and waiting up to ${this.waitS} seconds for it to complete`,
    );
  }
}

/**
 * Shows a run's progress as StartRun (or, after a re-attach, its event log) reports it: mco's
 * lines as each phase is reached and, on a terminal, the downloads as `i / N`, then the
 * finished nodes as mco's bar.
 */
export class RunProgressView {
  /** The run's node count, once known. */
  total = 0;
  private stopped = false;

  constructor(
    private readonly narrator: RunNarrator,
    private readonly progress: ProgressLine,
    private readonly background: boolean,
  ) {}

  /** Shows nothing more (the operator pressed Ctrl-C: the CLI is leaving). */
  stop(): void {
    this.stopped = true;
    this.narrator.quiet();
    this.progress.clear();
  }

  show(p: { state: RunState; downloaded: number; finished: number }): void {
    if (this.stopped) return;
    if (p.state === RunState.RUN_STATE_DOWNLOADING) this.narrator.downloading();
    if (p.state === RunState.RUN_STATE_RUNNING) {
      this.narrator.downloading();
      this.narrator.running(this.background);
    }
    if (p.state === RunState.RUN_STATE_DOWNLOADING) this.progress.update(`${p.downloaded} / ${this.total}`);
    else if (p.state === RunState.RUN_STATE_RUNNING) this.progress.bar(p.finished, this.total);
  }
}
