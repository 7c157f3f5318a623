import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RunTaskRequest, SchedulerServiceClient } from '../../gen/baton/v1/scheduler_service';
import { makeClient, unary } from '../../lib/grpc-client';
import { useDevStack } from '../helpers/dev-stack';
import { runCli } from '../helpers/cli';
import { startOtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver';
import { waitFor } from '../helpers/wait';

/**
 * One trace per run across processes (issue 8 point 5): redis-server, the three services and
 * three agents as separate processes export OTLP http/protobuf to a receiver inside this test;
 * a run's spans must form one trace whose parent chain crosses every process, with the
 * context carried inside the agent stream's messages.
 */
describe('tracing across processes', () => {
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
  const saved = { ...process.env };
  before(async () => {
    receiver = await startOtlpReceiver();
    // The stack's processes inherit this environment (the test runner turns the SDK off).
    process.env.OTEL_SDK_DISABLED = 'false';
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.endpoint;
    process.env.OTEL_BSP_SCHEDULE_DELAY = '100';
    // Every process serves metrics on a port of its own choosing and logs where.
    process.env.BATON_METRICS_LISTEN = '127.0.0.1:0';
  });
  /** Where each process serves its metrics, from its 'metrics served' log line. */
  const metricsAt = new Map<string, string>();
  const fleet = useDevStack({
    agents: 3,
    logLevel: 'info',
    onStderr: (name, line) => {
      if (!line.includes('metrics served at /metrics')) return;
      const { address } = JSON.parse(line) as { address: string };
      metricsAt.set(name, address);
    },
  });
  let scheduler: SchedulerServiceClient;
  before(() => {
    process.env = saved;
    scheduler = makeClient(SchedulerServiceClient, fleet.stack.addresses.scheduler);
  });
  after(async () => {
    scheduler.close();
    await receiver.close();
  });

  it('makes a run one trace: RunTask, metadata, download gate and dispatch on the scheduler, download and execution per node on the agents, results recorded', async () => {
    const response = await unary(
      scheduler,
      scheduler.runTask,
      RunTaskRequest.fromPartial({ task: 'demo::fail', inputJson: '{}', filter: { identities: ['node1', 'node2'], classes: [], agents: [], facts: [], compound: [] } }),
      { deadlineMs: 60_000 },
    );
    const taskId = response.taskId;
    const runSpan = (): ReceivedSpan | undefined => receiver.spans.find((s) => s.name === 'grpc.baton.v1.SchedulerService/RunTask' && s.kind === 2 && s.attributes['baton.task_id'] === taskId);
    const inTrace = (): ReceivedSpan[] => {
      const root = runSpan();
      return root ? receiver.spans.filter((s) => s.traceId === root.traceId) : [];
    };
    await waitFor('every span of the run to arrive', () => inTrace().filter((s) => s.name === 'grpc.baton.v1.ResultsService/RecordNodeResults' && s.kind === 2).length >= 2 && inTrace().filter((s) => s.name === 'agent.execute').length === 2, 30_000);
    const spans = inTrace();
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const parentOf = (s: ReceivedSpan): ReceivedSpan | undefined => byId.get(s.parentSpanId);
    const chain = (s: ReceivedSpan): string[] => {
      const names: string[] = [];
      for (let at: ReceivedSpan | undefined = s; at; at = parentOf(at)) names.push(`${at.service}:${at.name}`);
      return names.reverse();
    };
    const root = runSpan();
    assert.ok(root);
    assert.equal(root.service, 'baton-scheduler');
    assert.equal(root.attributes['baton.task'], 'demo::fail');
    assert.equal(root.attributes['baton.environment'], 'production');

    assert.ok(spans.some((s) => s.service === 'baton-metadata' && s.name === 'grpc.baton.v1.MetadataService/GetTask'), 'the metadata look-up is in the run trace');

    const executions = spans.filter((s) => s.name === 'agent.execute');
    assert.deepEqual(executions.map((s) => s.attributes['baton.node']).sort(), ['node1', 'node2']);
    for (const e of executions) {
      assert.equal(e.service, 'baton-agent');
      assert.deepEqual(chain(e), ['baton-scheduler:grpc.baton.v1.SchedulerService/RunTask', 'baton-scheduler:baton.dispatch', 'baton-agent:agent.execute']);
      assert.equal(e.attributes['baton.exit_code'], 3, 'demo::fail exits 3');
      assert.equal(e.attributes['baton.node_state'], 'NODE_STATE_FAILED');
      assert.equal(e.statusCode, 2, 'a failed task sets the span status');
    }
    const downloads = spans.filter((s) => s.name === 'agent.download');
    assert.deepEqual(downloads.map((s) => s.attributes['baton.node']).sort(), ['node1', 'node2']);
    for (const d of downloads) assert.deepEqual(chain(d).slice(0, 3), ['baton-scheduler:grpc.baton.v1.SchedulerService/RunTask', 'baton-scheduler:baton.download_gate', 'baton-agent:agent.download']);
    assert.ok(
      spans.some((d) => d.service === 'baton-metadata' && d.name === 'grpc.baton.v1.MetadataService/ReadTaskFile' && chain(d).includes('baton-agent:agent.download')),
      'the agents read the task files inside their download span',
    );

    const recorded = spans.filter((s) => s.service === 'baton-results' && s.name === 'grpc.baton.v1.ResultsService/RecordNodeResults' && chain(s).includes('baton-agent:agent.execute'));
    assert.equal(recorded.length, 2, 'each node result is recorded inside the trace, below its execution');
    assert.deepEqual(chain(recorded[0]).slice(0, 4), ['baton-scheduler:grpc.baton.v1.SchedulerService/RunTask', 'baton-scheduler:baton.dispatch', 'baton-agent:agent.execute', 'baton-scheduler:baton.record_result']);
    assert.ok(!receiver.spans.some((s) => s.name.startsWith('grpc.grpc.health')), 'health checks make no spans');
    assert.ok(
      spans.some((s) => s.service === 'baton-results' && s.attributes['db.system.name'] === 'redis' && chain(s).includes('baton-results:grpc.baton.v1.ResultsService/RecordNodeResults')),
      'the results service\'s Redis calls are spans inside the run trace',
    );
    assert.ok(spans.some((s) => s.service === 'baton-scheduler' && s.attributes['db.system.name'] === 'redis'), 'so are the scheduler\'s (discovery)');
  });

  it('roots the trace of `baton tasks run` in the CLI span, continued by RunTask and the agent that ran it', async () => {
    const cli = await runCli(['tasks', 'run', 'demo::echo', '--message', 'traced', '-I', 'node3', '--json'], {
      ...fleet.env,
      OTEL_SDK_DISABLED: 'false',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    });
    assert.equal(cli.code, 0, cli.stderr);
    const root = await waitFor('the CLI span', () => receiver.spans.find((s) => s.service === 'baton-cli' && s.name === 'baton tasks run'), 30_000);
    assert.equal(root.parentSpanId, '', 'the CLI span is the root');
    const runTask = await waitFor('the RunTask server span', () => receiver.spans.find((s) => s.traceId === root.traceId && s.service === 'baton-scheduler' && s.name === 'grpc.baton.v1.SchedulerService/RunTask' && s.kind === 2), 30_000);
    const execution = await waitFor('node3 execution span', () => receiver.spans.find((s) => s.traceId === root.traceId && s.name === 'agent.execute'), 30_000);
    assert.equal(execution.attributes['baton.node'], 'node3');
    assert.equal(execution.attributes['baton.exit_code'], 0);
    assert.equal(runTask.attributes['baton.task'], 'demo::echo');
  });

  it('serves Prometheus metrics on each service and agent that count what the runs did', async () => {
    const scrape = async (name: string): Promise<string> => {
      const address = metricsAt.get(name);
      assert.ok(address, `no metrics address logged by ${name}; got ${[...metricsAt.keys()].join(', ')}`);
      return (await fetch(`http://${address}/metrics`)).text();
    };
    const value = (text: string, series: string): number => Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    const scheduler = await scrape('scheduler');
    assert.equal(value(scheduler, 'baton_connected_agents'), 3);
    assert.equal(value(scheduler, 'baton_node_results_total{outcome="failed"}'), 2, 'the two demo::fail nodes');
    assert.equal(value(scheduler, 'baton_node_results_total{outcome="succeeded"}'), 1, 'the demo::echo node');
    assert.equal(value(scheduler, 'baton_dispatch_latency_seconds_count'), 2);
    assert.equal(value(scheduler, 'baton_result_latency_seconds_count'), 3);
    const results = await scrape('results');
    assert.equal(value(results, 'baton_runs_total{state="RUN_STATE_FAILED"}'), 1);
    assert.equal(value(results, 'baton_runs_total{state="RUN_STATE_SUCCEEDED"}'), 1);
    const agent = await scrape('node1');
    assert.ok(value(agent, 'baton_agent_downloaded_bytes_total') > 0, 'node1 downloaded demo::fail');
    assert.ok(value(agent, 'baton_agent_cache_lookups_total{result="miss"}') >= 1);
  });
});
