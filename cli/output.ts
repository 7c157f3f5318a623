/**
 * How `baton` ends: every byte it wrote reaches its reader, and a reader that goes away is no
 * error. Node writes to a pipe asynchronously once the pipe is full, so `process.exit` right after
 * a large write cut a piped `--json` document at 64 KiB while still exiting 0; and a reader that
 * closed early (`| head`) raised EPIPE as an unhandled error with a stack.
 */

/** Exit code used when the reader of stdout or stderr went away: quiet, as a command killed by SIGPIPE would be in a pipe. */
export const EXIT_READER_GONE = 0;

/** Makes EPIPE on stdout or stderr a quiet exit; any other write error still surfaces. */
export function quietOnClosedReader(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') process.exit(EXIT_READER_GONE);
      throw err;
    });
  }
}

/** Resolves once everything written to `stream` so far has been handed to the operating system. */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.destroyed || stream.writableEnded) return Promise.resolve();
  // Writes complete in order, so the callback of an empty write comes after every earlier one.
  return new Promise((resolve) => stream.write('', () => resolve()));
}

/** Exits with `code` once stdout and stderr are drained (however slow their readers are). */
export async function exitWhenDrained(code: number): Promise<never> {
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}
