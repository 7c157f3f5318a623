import { after, before } from 'node:test';
import { DevStack, type DevStackOptions } from '../../cli/dev-stack';

/**
 * A whole Baton stack (redis-server, the three services and agents, all separate processes) for
 * one test file: started before its tests, stopped after them. `env` points the `baton` CLI at it.
 */
export function useDevStack(options: DevStackOptions): { readonly stack: DevStack; readonly env: NodeJS.ProcessEnv } {
  let stack: DevStack | undefined;
  before(async () => {
    stack = await DevStack.start(options);
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
      const a = started().addresses;
      return { BATON_SCHEDULER: a.scheduler, BATON_METADATA: a.metadata, BATON_RESULTS: a.results };
    },
  };
}
