import { createServer } from 'node:net';

/** Asks the OS for a free TCP port on 127.0.0.1 (bind to port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** How often a start on a free port is tried before its failure is reported. */
const PORT_TRIES = 3;

/**
 * Runs `attempt` (which starts something on ports from `freePort`) again when it failed because
 * a port was taken: between asking the OS for a free port and binding it, another process (a
 * test file running beside this one) may have bound the same port.
 */
export async function retryWhilePortTaken<T>(attempt: () => Promise<T>): Promise<T> {
  for (let tried = 1; ; tried++) {
    try {
      return await attempt();
    } catch (err) {
      if (tried >= PORT_TRIES || !/address already in use/i.test((err as Error).message)) throw err;
    }
  }
}
