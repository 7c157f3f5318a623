import { EXIT } from './cli-error';
import { describeError } from './error-report';
import { callerMetadata, type Clients } from './connection';
import type { ProgressLine } from './progress-line';
import type { RunLocator } from './run-locator';

/** Seconds after a first Ctrl-C in which a second one cancels the run. */
export const SECOND_INTERRUPT_S = 3;

/** How long a Ctrl-C waits for the task id of a run that is being created. */
const LOCATE_ON_INTERRUPT_MS = 5000;

/** What `onInterrupt` hands back to the command it guards. */
export interface Interrupt {
  /** Resolves with the exit code (130) once a Ctrl-C has been dealt with. */
  code: Promise<number>;
  /**
   * The command's own answer or the Ctrl-C's exit code, whichever comes first; an answer that
   * arrives after a Ctrl-C (the run ended in the seconds the CLI waits for a second one) gives
   * way to it, so that the CLI exits 130 as its line said, not with a summary.
   */
  race<T>(answer: Promise<T>): Promise<{ answer: T } | { code: number }>;
  /** Stops listening for Ctrl-C. */
  dispose(): void;
}

/**
 * Ctrl-C while `baton tasks run` waits: the run lives on the scheduler and goes on, so one
 * line says so and how to watch or cancel it; a second Ctrl-C within SECOND_INTERRUPT_S (or
 * the first with `--cancel-on-interrupt`) cancels it. Resolves with the exit code (130).
 * `quiet` runs at the first Ctrl-C: the command stops its live lines and progress then, so that
 * nothing ("Running task ...", a bar) follows the line that says the CLI is leaving.
 */
export function onInterrupt(
  clients: Clients,
  locator: RunLocator,
  progress: ProgressLine,
  cancelOnInterrupt: boolean,
  quiet: () => void = () => undefined,
): Interrupt {
  const say = (line: string) => process.stderr.write(`${line}\n`);
  let resolveCode: (code: number) => void = () => undefined;
  const code = new Promise<number>((resolve) => (resolveCode = resolve));
  let interrupts = 0;
  let cancelling = false;

  const cancel = async (): Promise<void> => {
    cancelling = true;
    const run = await locator.within(LOCATE_ON_INTERRUPT_MS);
    if (!run) {
      say("Cannot cancel: the scheduler has not recorded the run yet; look for it with 'baton tasks runs'");
      return resolveCode(EXIT.INTERRUPTED);
    }
    try {
      const res = await clients.call('scheduler', (c) => c.cancelRun, { taskId: run.taskId }, { metadata: callerMetadata() });
      say(`Cancelled task ${run.taskId}: cancel sent to ${res.nodes.length} nodes; read what they report with 'baton tasks status ${run.taskId}'`);
    } catch (err) {
      say(`Cancelling task ${run.taskId} failed: ${describeError(err).line}`);
    }
    resolveCode(EXIT.INTERRUPTED);
  };

  const first = async (): Promise<void> => {
    quiet();
    progress.clear();
    if (process.stderr.isTTY) process.stderr.write('\n'); // after the terminal's ^C
    if (cancelOnInterrupt) return cancel();
    const run = await locator.within(LOCATE_ON_INTERRUPT_MS);
    if (cancelling) return;
    if (run) {
      say(
        `Interrupted: task ${run.taskId} goes on running on its nodes; watch it with 'baton tasks watch ${run.taskId}', cancel it with 'baton tasks cancel ${run.taskId}' (or press Ctrl-C again within ${SECOND_INTERRUPT_S} s)`,
      );
    } else {
      say(
        `Interrupted: the run may still start on the scheduler; find it with 'baton tasks runs' (press Ctrl-C again within ${SECOND_INTERRUPT_S} s to cancel it)`,
      );
    }
    setTimeout(() => {
      if (!cancelling) resolveCode(EXIT.INTERRUPTED);
    }, SECOND_INTERRUPT_S * 1000);
  };

  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) void first();
    else if (!cancelling) {
      if (process.stderr.isTTY) process.stderr.write('\n'); // after the terminal's ^C
      void cancel();
    }
  };
  process.on('SIGINT', onSigint);
  const race = async <T>(answer: Promise<T>): Promise<{ answer: T } | { code: number }> => {
    const first = await Promise.race([answer.then((a) => ({ answer: a })), code.then((c) => ({ code: c }))]);
    if ('code' in first || interrupts === 0) return first;
    return { code: await code };
  };
  return { code, race, dispose: () => process.off('SIGINT', onSigint) };
}
