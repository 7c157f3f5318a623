import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLogger } from './logger';
import { EVENT_LOOP_SAMPLE_MS, metrics, OWNERS, startMetricsServer, type MetricsPiece } from './metrics';

describe('metrics ownership', () => {
  it("gives each family to the pieces that feed it, so no process exports another piece's families", () => {
    const owned = (piece: MetricsPiece) => OWNERS[piece].map((m) => (m as unknown as { name: string }).name);
    assert.deepEqual(owned('results'), ['baton_runs_total', 'baton_redis_errors_total']);
    assert.deepEqual(owned('agent'), ['baton_agent_downloaded_bytes_total', 'baton_agent_cache_lookups_total']);
    assert.deepEqual(owned('metadata'), []);
    assert.ok(owned('scheduler').includes('baton_connected_agents'));
    assert.ok(!owned('scheduler').includes('baton_runs_total'));
  });
});

describe('metrics endpoint', () => {
  let server: Awaited<ReturnType<typeof startMetricsServer>>;
  before(async () => {
    server = await startMetricsServer('127.0.0.1:0', createLogger('test', 'silent'), 'scheduler');
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
    assert.doesNotMatch(text, /^# TYPE baton_runs_total /m, 'the results service owns baton_runs_total; a scheduler does not export it');
    assert.doesNotMatch(text, /^# TYPE baton_agent_downloaded_bytes_total /m, "nor the agents' families");
    const totalGauges = [...text.matchAll(/^# TYPE (\S+_total) (gauge|untyped)$/gm)].map((m) => m[1]);
    assert.deepEqual(totalGauges, [], 'a family named _total is a counter');
  });

  it('listens on a bracketed IPv6 address, as every host:port setting may give one', async () => {
    const v6 = await startMetricsServer('[::1]:0', createLogger('test', 'silent'), 'scheduler');
    try {
      assert.match(v6.address, /^\[::1\]:[1-9]\d*$/);
      const res = await fetch(`http://${v6.address}/metrics`);
      assert.equal(res.status, 200);
    } finally {
      await v6.close();
    }
  });

  it('answers 404 naming where the metrics are for any other path', async () => {
    const res = await fetch(`http://${server.address}/`);
    assert.equal(res.status, 404);
    assert.match(await res.text(), /GET \/metrics/);
  });
});

describe('metrics at rest', () => {
  it('leave an idle process asleep: it wakes a few times a second, not a hundred', async () => {
    // A fresh Node process holding only the metrics module, as an idle agent or service does,
    // counts the times its main thread went to sleep and woke up (voluntary context switches)
    // over 2 s. Sampling the event loop every 10 ms, as prom-client does by default, is some 200.
    const child = spawn(
      process.execPath,
      [
        '-e',
        `require(${JSON.stringify(join(__dirname, 'metrics'))});
         const woken = () => Number(/^voluntary_ctxt_switches:\\s+(\\d+)/m.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'))[1]);
         setInterval(() => undefined, 60000);
         setTimeout(() => { const before = woken(); setTimeout(() => { console.log(woken() - before); process.exit(0); }, 2000); }, 500);`,
      ],
      { detached: true, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const killGroup = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(killGroup, 30_000);
    try {
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      assert.equal(code, 0, 'the idle process ran its 2 s and exited');
      const wakeUps = Number(out.trim());
      const expected = (2000 / EVENT_LOOP_SAMPLE_MS) * 2 + 20;
      assert.ok(wakeUps < expected, `${wakeUps} wake-ups in 2 s; at most ${expected} expected`);
    } finally {
      clearTimeout(timer);
      killGroup();
    }
  });
});
