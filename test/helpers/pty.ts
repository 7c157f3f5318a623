import { spawn } from 'node:child_process';
import { batonScript } from '../../lib/package-root';

/** What a command printed on a pseudo-terminal (stdout and stderr together, as a person sees them) and how it exited. */
export interface PtyRun {
  code: number | null;
  output: string;
}

/** Quotes one argument for /bin/sh (the arguments are the test's own, never network input). */
function shellQuote(arg: string): string {
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs the compiled `baton` CLI under a pseudo-terminal with util-linux `script -qfec`, so it
 * sees a terminal on stdout and stderr exactly as in an operator's shell (colours, live
 * progress). `script -e` exits with the command's exit code.
 */
export function runCliInPty(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<PtyRun> {
  const command = [process.execPath, batonScript(), ...args].map(shellQuote).join(' ');
  const childEnv: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm-256color', COLUMNS: '100', ...env };
  if (!('NO_COLOR' in env)) delete childEnv.NO_COLOR;
  delete childEnv.FORCE_COLOR;
  const child = spawn('script', ['-qfec', command, '/dev/null'], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** A `baton` command running under a pseudo-terminal, to type into (Ctrl-C is `\x03`). */
export interface PtySession {
  /** Types `text` on the terminal. */
  type(text: string): void;
  /** Everything shown so far. */
  output(): string;
  /** Resolves with the exit code (`script -e` passes the command's on). */
  exited: Promise<number | null>;
  /** Ends the whole process group. */
  kill(): void;
}

/**
 * Starts the compiled `baton` CLI under a pseudo-terminal whose keyboard is this test: what
 * `type` writes reaches the terminal, so `\x03` makes the terminal send SIGINT to the command,
 * as Ctrl-C does. In its own process group.
 */
export function startCliInPty(args: string[], env: NodeJS.ProcessEnv = {}): PtySession {
  const command = [process.execPath, batonScript(), ...args].map(shellQuote).join(' ');
  const childEnv: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm-256color', COLUMNS: '100', NO_COLOR: '1', ...env };
  const child = spawn('script', ['-qfec', command, '/dev/null'], { env: childEnv, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return {
    type: (text) => child.stdin.write(text),
    output: () => output,
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    },
  };
}
