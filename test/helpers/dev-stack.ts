import { after, before } from 'node:test';
import { DevStack, type DevStackOptions } from '../../cli/dev-stack';
import { testRedisIsCluster } from './redis';

/**
 * A whole Baton stack (redis-server, the three services and agents, all separate processes) for
 * one test file: started before its tests, stopped after them; on a Redis Cluster when the tests
 * run on one (`testRedisIsCluster`). `env` points the `baton` CLI at
 * it; with `tls: true` it also carries operator `alice`'s certificate (BATON_TLS_CA/CERT/KEY).
 */
export function useDevStack(options: DevStackOptions): { readonly stack: DevStack; readonly env: NodeJS.ProcessEnv } {
  let stack: DevStack | undefined;
  before(async () => {
    stack = await DevStack.start({ redisCluster: testRedisIsCluster(), ...options });
  });
  after(async () => {
    await stack?.stop();
  });
  const started = (): DevStack => {
    if (!stack) throw new Error('the stack is not started yet (use inside a test)');
    return stack;
  };
  return {
    get stack() {
      return started();
    },
    get env() {
      const { addresses: a, tls } = started();
      const env: NodeJS.ProcessEnv = { BATON_SCHEDULER: a.scheduler, BATON_METADATA: a.metadata, BATON_RESULTS: a.results };
      if (tls) {
        const alice = tls.operator('alice');
        Object.assign(env, { BATON_TLS_CA: tls.ca, BATON_TLS_CERT: alice.cert, BATON_TLS_KEY: alice.key });
      }
      return env;
    },
  };
}
