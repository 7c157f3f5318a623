import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { retryWhilePortTaken } from './free-port';
import { startRedisServer } from './redis-server';

/** A TCP server holding a port of 127.0.0.1, as another process would. */
async function holdPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, server };
}

describe('startRedisServer', () => {
  it('on a port another process holds, fails naming why redis-server stopped', async () => {
    const held = await holdPort();
    try {
      await assert.rejects(startRedisServer({ port: held.port }), /Address already in use/);
    } finally {
      held.server.close();
    }
  });

  it('on a free port, starts again on another port when the one it was given was taken meanwhile', async () => {
    const held = await holdPort();
    const ports: number[] = [];
    let tries = 0;
    try {
      // The first try gets the held port, as when another test file binds it between the ask and the bind.
      const redis = await retryWhilePortTaken(() => {
        const port = tries++ === 0 ? held.port : undefined;
        return startRedisServer({ port }).then((r) => (ports.push(r.port), r));
      });
      try {
        assert.equal(tries, 2);
        assert.notEqual(redis.port, held.port);
        assert.deepEqual(ports, [redis.port]);
      } finally {
        await redis.stop();
      }
    } finally {
      held.server.close();
    }
  });

  it('does not retry a failure that is not a taken port', async () => {
    let tries = 0;
    await assert.rejects(
      retryWhilePortTaken(() => {
        tries++;
        return Promise.reject(new Error('redis-server: exited (1) before it was ready\nFatal error loading the DB'));
      }),
      /Fatal error loading the DB/,
    );
    assert.equal(tries, 1);
  });
});
