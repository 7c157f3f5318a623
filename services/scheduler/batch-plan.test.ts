import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { batchSizeOf, planBatches } from './batch-plan';

const nodes = ['n1', 'n2', 'n3', 'n4', 'n5'];

describe('planBatches', () => {
  it('puts every node in one batch without a batch spec', () => {
    assert.deepEqual(planBatches(nodes, undefined), [nodes]);
  });

  it('splits by count in discovery order, the last batch holding the rest', () => {
    assert.deepEqual(planBatches(nodes, { size: 2, sleepMs: 1000 }), [['n1', 'n2'], ['n3', 'n4'], ['n5']]);
    assert.deepEqual(planBatches(nodes, { size: 9, sleepMs: 1000 }), [nodes]);
  });

  it('rounds a percentage of the nodes up, and never below one node', () => {
    assert.equal(batchSizeOf({ percent: 50, sleepMs: 0 }, 5), 3);
    assert.equal(batchSizeOf({ percent: 1, sleepMs: 0 }, 5), 1);
    assert.equal(batchSizeOf({ percent: 100, sleepMs: 0 }, 5), 5);
    assert.equal(batchSizeOf({ percent: 10, sleepMs: 0 }, 1000), 100);
    assert.deepEqual(planBatches(nodes, { percent: 40, sleepMs: 0 }), [['n1', 'n2'], ['n3', 'n4'], ['n5']]);
  });
});
