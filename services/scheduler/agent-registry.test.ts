import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AgentRegistry } from './agent-registry';
import { TRACKED_RUN_TTL_MS } from './run-tracker';

describe('AgentRegistry outstanding runs', () => {
  it('keeps a run outstanding on a node from its run command until its final result is stored', () => {
    const registry = new AgentRegistry<object>();
    registry.runSent('web1', 'a'.repeat(32));
    registry.runSent('web1', 'b'.repeat(32));
    const started = new Date('2026-01-01T00:00:00Z');
    registry.runStarted('web1', 'a'.repeat(32), started);
    assert.deepEqual(
      registry.outstanding('web1').map((r) => [r.taskId, r.startTime]),
      [
        ['a'.repeat(32), started],
        ['b'.repeat(32), undefined],
      ],
    );
    registry.runFinished('web1', 'a'.repeat(32));
    assert.deepEqual(
      registry.outstanding('web1').map((r) => r.taskId),
      ['b'.repeat(32)],
    );
    assert.deepEqual(registry.outstanding('web2'), []);
  });

  it('forgets runs a node never reported after the run tracker would have', () => {
    const registry = new AgentRegistry<object>();
    registry.runSent('web1', 'a'.repeat(32), 0);
    registry.runSent('web1', 'b'.repeat(32), TRACKED_RUN_TTL_MS + 1);
    assert.deepEqual(
      registry.outstanding('web1').map((r) => r.taskId),
      ['b'.repeat(32)],
    );
  });
});
