import { fork, type ChildProcess } from 'node:child_process';

/**
 * A benchmark worker: a node process forked with an IPC channel that answers one request at a
 * time (`{ type: ... }` in, one `{ type: 'done' | 'error', ... }` out). The agent fleets and the
 * idle-agent clients run this way, so their CPU is not the benchmark's own.
 */

/** A worker's answer to one request. */
export type WorkerReply = { type: 'done'; value?: unknown } | { type: 'error'; message: string };

/** The parent's handle on a forked worker. */
export class WorkerProcess {
  private pending?: { resolve: (v: unknown) => void; reject: (e: Error) => void };
  private exited = false;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.on('message', (msg: WorkerReply) => {
      const p = this.pending;
      this.pending = undefined;
      if (!p) return;
      if (msg.type === 'done') p.resolve(msg.value);
      else p.reject(new Error(`${name}: ${msg.message}`));
    });
    child.once('exit', (code, signal) => {
      this.exited = true;
      this.pending?.reject(new Error(`${name} exited (${signal ?? code}) during a request`));
      this.pending = undefined;
    });
  }

  /** Forks `modulePath` with `env` and node flags `execArgv` (no NODE_OPTIONS from the parent: its profiling preload is for the services). */
  static start(name: string, modulePath: string, env: NodeJS.ProcessEnv = {}, execArgv: string[] = []): WorkerProcess {
    const inherited = { ...process.env };
    delete inherited.NODE_OPTIONS;
    const child = fork(modulePath, [], { env: { ...inherited, ...env }, execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return new WorkerProcess(name, child);
  }

  /** Sends one request and resolves with the worker's value. */
  request<T>(message: { type: string } & Record<string, unknown>): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited`));
    if (this.pending) return Promise.reject(new Error(`${this.name} is busy with another request`));
    return new Promise<T>((resolve, reject) => {
      this.pending = { resolve: resolve as (v: unknown) => void, reject };
      this.child.send(message);
    });
  }

  /** Asks the worker to stop and waits for it to exit; kills it after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    this.child.send({ type: 'stop' });
    await gone;
    clearTimeout(timer);
  }
}

/** Serves requests in a forked worker: `handlers[type]` per message; `stop` runs `onStop` and exits. */
export function serveWorker(handlers: Record<string, (msg: Record<string, unknown>) => Promise<unknown>>, onStop: () => Promise<void>): void {
  const reply = (r: WorkerReply) => process.send?.(r);
  process.on('message', (msg: { type: string } & Record<string, unknown>) => {
    if (msg.type === 'stop') {
      void onStop().finally(() => process.exit(0));
      return;
    }
    const handler = handlers[msg.type];
    if (!handler) {
      reply({ type: 'error', message: `unknown request '${msg.type}'; expected one of ${Object.keys(handlers).join(', ')}, stop` });
      return;
    }
    handler(msg).then(
      (value) => reply({ type: 'done', value }),
      (err: unknown) => reply({ type: 'error', message: err instanceof Error ? err.message : String(err) }),
    );
  });
  // The parent died: nothing will ask us to stop.
  process.on('disconnect', () => void onStop().finally(() => process.exit(0)));
}
