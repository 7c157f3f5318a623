import { stat } from 'node:fs/promises';
import type { Logger } from '../lib/logger';
import { agentVersion } from './agent-version';
import { collectFacts, readClassesFile, readFactsFile, type Facts } from './facts';

/**
 * The node's facts and classes as the agent reports them: built-in facts with
 * the facts file merged over them, and the configured classes plus those of the classes file.
 * The files are checked by modification time every poll interval (a poll works the same on
 * every filesystem, where fs.watch misses renames and network mounts); a change is re-read and
 * handed to `onChange`, which pushes it to the scheduler. A file that stops parsing keeps the
 * last good content and is logged, so a half-written file never empties the node's facts.
 */

/** Default seconds between checks of the facts and classes files. */
export const DEFAULT_FACTS_POLL_INTERVAL_S = 30;

/** What FactsSource reports. */
export interface NodeFacts {
  facts: Facts;
  classes: string[];
}

/** Options of FactsSource. */
export interface FactsSourceOptions {
  identity: string;
  factsFile?: string;
  classesFile?: string;
  /** Classes from the configuration, listed before the classes file's. */
  classes: string[];
  log: Logger;
}

/** The node's facts and classes, kept current from their files. */
export class FactsSource {
  private fileFacts: Facts = {};
  private fileClasses: string[] = [];
  private mtimes = new Map<string, number>();
  private timer?: NodeJS.Timeout;

  /** Reads the files once; throws ConfigError when one cannot be read or parsed. */
  constructor(private readonly options: FactsSourceOptions) {
    if (options.factsFile) this.fileFacts = readFactsFile(options.factsFile);
    if (options.classesFile) this.fileClasses = readClassesFile(options.classesFile);
  }

  /** The facts and classes now. */
  current(): NodeFacts {
    const classes = [...new Set([...this.options.classes, ...this.fileClasses])];
    return { facts: collectFacts(this.options.identity, agentVersion(), this.fileFacts), classes };
  }

  /** Checks the files every `intervalMs` and calls `onChange` after a change was read. */
  start(intervalMs: number, onChange: (facts: NodeFacts) => void): void {
    void this.check(); // records the initial modification times
    this.timer = setInterval(() => {
      void this.check().then((changed) => changed && onChange(this.current()));
    }, intervalMs);
    this.timer.unref();
  }

  /** Stops checking. */
  stop(): void {
    clearInterval(this.timer);
  }

  /** Re-reads the files whose modification time changed; true when something was re-read. */
  async check(): Promise<boolean> {
    let changed = false;
    const { factsFile, classesFile, log } = this.options;
    for (const [path, read] of [
      [factsFile, (p: string) => (this.fileFacts = readFactsFile(p))],
      [classesFile, (p: string) => (this.fileClasses = readClassesFile(p))],
    ] as const) {
      if (!path) continue;
      let mtime: number;
      try {
        mtime = (await stat(path)).mtimeMs;
      } catch {
        continue; // gone for now (being replaced): keep what was read
      }
      const before = this.mtimes.get(path);
      this.mtimes.set(path, mtime);
      if (before === undefined || before === mtime) continue;
      try {
        read(path);
        changed = true;
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'cannot re-read; keeping the facts read before');
      }
    }
    return changed;
  }
}
