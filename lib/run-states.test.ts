import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NodeState, RunEvent, RunState } from '../gen/baton/v1/run';
import { everyNodeFinal, isFinalNodeState, isFinalRunState, isRunOverEvent, runEndState } from './run-states';

const {
  NODE_STATE_SUCCEEDED: OK,
  NODE_STATE_FAILED: FAILED,
  NODE_STATE_RUNNING: RUNNING,
  NODE_STATE_CANCELLED: CANCELLED,
  NODE_STATE_NO_RESPONSE: NO_RESPONSE,
} = NodeState;

/** `runEndState` over the nodes of a map (a missing node has no result). */
function endOf(nodes: string[], states: Record<string, NodeState>): RunState | undefined {
  return runEndState(nodes, (host) => states[host]);
}

describe('run-states, the owner of "is the run over"', () => {
  it('counts SUCCEEDED, FAILED, CANCELLED and NO_RESPONSE as final node states, and no other', () => {
    assert.deepEqual(
      Object.values(NodeState)
        .filter((s): s is NodeState => typeof s === 'number' && isFinalNodeState(s))
        .sort(),
      [OK, FAILED, NO_RESPONSE, CANCELLED].sort(),
    );
  });

  it('counts SUCCEEDED, FAILED and CANCELLED as final run states, not PENDING, DOWNLOADING or RUNNING', () => {
    for (const s of [RunState.RUN_STATE_SUCCEEDED, RunState.RUN_STATE_FAILED, RunState.RUN_STATE_CANCELLED])
      assert.equal(isFinalRunState(s), true, RunState[s]);
    for (const s of [RunState.RUN_STATE_UNSPECIFIED, RunState.RUN_STATE_PENDING, RunState.RUN_STATE_DOWNLOADING, RunState.RUN_STATE_RUNNING])
      assert.equal(isFinalRunState(s), false, RunState[s]);
  });

  it('names the state change into a final state as the event that ends a run, and nothing else', () => {
    const change = (state: RunState) => RunEvent.fromPartial({ event: { $case: 'runStateChanged', value: { state, reason: '' } } });
    assert.equal(isRunOverEvent(change(RunState.RUN_STATE_FAILED)), true);
    assert.equal(isRunOverEvent(change(RunState.RUN_STATE_RUNNING)), false);
    assert.equal(isRunOverEvent(RunEvent.fromPartial({ event: { $case: 'nodeResult', value: { host: 'a', state: OK } } })), false);
    assert.equal(isRunOverEvent(undefined), false);
  });

  it('lets a run end only once every node has a final result', () => {
    assert.equal(everyNodeFinal(2, 3), false);
    assert.equal(everyNodeFinal(3, 3), true);
    assert.equal(everyNodeFinal(0, 0), true, 'a run of no nodes has nothing to wait for');
  });

  it('ends a run SUCCEEDED when all succeeded, FAILED otherwise, and not while a node is not final or has no result', () => {
    assert.equal(endOf(['a', 'b'], { a: OK }), undefined);
    assert.equal(endOf(['a', 'b'], { a: OK, b: RUNNING }), undefined);
    assert.equal(endOf(['a', 'b'], { a: OK, b: OK }), RunState.RUN_STATE_SUCCEEDED);
    assert.equal(endOf(['a', 'b'], { a: OK, b: NO_RESPONSE }), RunState.RUN_STATE_FAILED);
    assert.equal(endOf(['a', 'b'], { a: OK, b: FAILED }), RunState.RUN_STATE_FAILED);
  });

  it('ends a run CANCELLED once every node is final and any was cancelled, even next to a failure', () => {
    assert.equal(endOf(['a', 'b', 'c'], { a: OK, b: FAILED, c: CANCELLED }), RunState.RUN_STATE_CANCELLED);
    assert.equal(endOf(['a', 'b', 'c'], { a: RUNNING, b: FAILED, c: CANCELLED }), undefined, 'not while a node still runs');
  });
});
