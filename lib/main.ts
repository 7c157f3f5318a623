import { ConfigError } from './config';
import { silenceServernameIpWarning } from './node-warnings';

/**
 * Runs a process's async main. A configuration problem prints one line and exits 2; any other
 * startup failure prints one line (the stack goes to the debug log only) and exits 1.
 */
export function runMain(piece: string, main: () => Promise<void>): void {
  silenceServernameIpWarning();
  main().catch((err: unknown) => {
    const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
    process.stderr.write(`baton-${piece}: ${message}\n`);
    if (process.env.BATON_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  });
}

/**
 * The stdout line a server prints once it listens; `baton dev` and the tests wait for it, and
 * may signal the process right after, so install signal handlers before calling this.
 */
export function announceListening(piece: string, address: string): void {
  process.stdout.write(`baton-${piece} listening on ${address}\n`);
}

/** Matches the line printed by `announceListening` and captures the address. */
export const LISTENING_LINE = /^baton-[a-z]+ listening on (\S+)$/;
