import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLogger } from './logger';
import { metrics, startMetricsServer } from './metrics';

describe('metrics endpoint', () => {
  let server: Awaited<ReturnType<typeof startMetricsServer>>;
  before(async () => {
    server = await startMetricsServer('127.0.0.1:0', createLogger('test', 'silent'));
  });
  after(() => server.close());

  it('serves what the process counted in the Prometheus text format at GET /metrics', async () => {
    metrics.nodeResults.inc({ outcome: 'failed' }, 3);
    metrics.connectedAgents.set(7);
    const res = await fetch(`http://${server.address}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await res.text();
    assert.match(text, /^baton_node_results_total\{outcome="failed"\} 3$/m);
    assert.match(text, /^baton_connected_agents 7$/m);
    assert.match(text, /^baton_process_cpu_user_seconds_total \d/m, 'process metrics are included');
  });

  it('answers 404 naming where the metrics are for any other path', async () => {
    const res = await fetch(`http://${server.address}/`);
    assert.equal(res.status, 404);
    assert.match(await res.text(), /GET \/metrics/);
  });
});
