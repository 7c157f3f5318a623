import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { RunTaskRequest, SchedulerServiceClient } from '../../gen/baton/v1/scheduler_service';
import { makeClient, unary } from '../../lib/grpc-client';
import { cliEnvironmentpath } from '../helpers/cli-environment';
import { useDevStack } from '../helpers/dev-stack';
import { runCli } from '../helpers/cli';
import { startOtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver';
import { waitFor } from '../helpers/wait';

/**
 * One trace per run across processes: redis-server, the three services and
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
    // Heartbeats every second, so several happen during the test: none may make a span.
    process.env.BATON_HEARTBEAT_INTERVAL_S = '1';
    // The standard resource variable reaches every process's spans.
    process.env.OTEL_RESOURCE_ATTRIBUTES = 'deployment.environment.name=ci-trace-test';
  });
  /** Where each process serves its metrics, from its 'metrics served' log line. */
  const metricsAt = new Map<string, string>();
  const fleet = useDevStack({
    agents: 3,
    // The demo module, and runs::sleep for a task that outlasts the agent's TaskStarted hold.
    environmentpath: cliEnvironmentpath(),
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

  /** The spans of the trace rooted in the RunTask that started run `taskId` (none before that span arrives). */
  const runTrace = (taskId: string): ReceivedSpan[] => {
    const root = receiver.spans.find((s) => s.name === 'grpc.baton.v1.SchedulerService/RunTask' && s.kind === 2 && s.attributes['baton.task_id'] === taskId);
    return root ? receiver.spans.filter((s) => s.traceId === root.traceId) : [];
  };
  /** The `service:name` of a span and of each of its ancestors in `spans`, root first. */
  const chainOf = (spans: ReceivedSpan[], span: ReceivedSpan): string[] => {
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const names: string[] = [];
    for (let at: ReceivedSpan | undefined = span; at; at = byId.get(at.parentSpanId)) names.push(`${at.service}:${at.name}`);
    return names.reverse();
  };

  it('makes a run one trace: RunTask, metadata, download gate and dispatch on the scheduler, download and execution per node on the agents, results recorded', async () => {
    const response = await unary(
      scheduler,
      scheduler.runTask,
      RunTaskRequest.fromPartial({
        task: 'demo::fail',
        inputJson: '{}',
        filter: { identities: ['node1', 'node2'], classes: [], agents: [], facts: [], compound: [] },
      }),
      { deadlineMs: 60_000 },
    );
    const taskId = response.taskId;
    const runSpan = (): ReceivedSpan | undefined =>
      receiver.spans.find((s) => s.name === 'grpc.baton.v1.SchedulerService/RunTask' && s.kind === 2 && s.attributes['baton.task_id'] === taskId);
    const inTrace = (): ReceivedSpan[] => runTrace(taskId);
    await waitFor(
      'every span of the run to arrive',
      () =>
        inTrace().filter((s) => s.name === 'grpc.baton.v1.ResultsService/RecordNodeResults' && s.kind === 2).length >= 1 &&
        inTrace().filter((s) => s.name === 'agent.execute').length === 2,
      30_000,
    );
    const spans = inTrace();
    const chain = (s: ReceivedSpan): string[] => chainOf(spans, s);
    const root = runSpan();
    assert.ok(root);
    assert.equal(root.service, 'baton-scheduler');
    assert.equal(root.attributes['baton.task'], 'demo::fail');
    assert.equal(root.attributes['baton.environment'], 'production');

    assert.ok(
      spans.some((s) => s.service === 'baton-metadata' && s.name === 'grpc.baton.v1.MetadataService/GetTask'),
      'the metadata look-up is in the run trace',
    );

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
    for (const d of downloads)
      assert.deepEqual(chain(d).slice(0, 3), [
        'baton-scheduler:grpc.baton.v1.SchedulerService/RunTask',
        'baton-scheduler:baton.download_gate',
        'baton-agent:agent.download',
      ]);
    assert.ok(
      spans.some(
        (d) => d.service === 'baton-metadata' && d.name === 'grpc.baton.v1.MetadataService/ReadTaskFile' && chain(d).includes('baton-agent:agent.download'),
      ),
      'the agents read the task files inside their download span',
    );

    const recorded = spans.filter(
      (s) => s.service === 'baton-results' && s.name === 'grpc.baton.v1.ResultsService/RecordNodeResults' && chain(s).includes('baton-agent:agent.execute'),
    );
    // The scheduler batches results with others' when they queue up, and a node's RUNNING is held
    // briefly and replaced by its final result when that comes meanwhile (as it can on a loaded
    // machine, where the agent's two messages arrive together): one call or more, each below a
    // node's execution.
    assert.ok(recorded.length >= 1, 'the results are recorded inside the trace, below an execution');
    const below =
      'baton-scheduler:grpc.baton.v1.SchedulerService/RunTask > baton-scheduler:baton.dispatch > baton-agent:agent.execute > baton-scheduler:baton.record_';
    for (const r of recorded) assert.ok(chain(r).slice(0, 4).join(' > ').startsWith(below), chain(r).join(' > '));
    assert.ok(!receiver.spans.some((s) => s.name.startsWith('grpc.grpc.health')), 'health checks make no spans');
    assert.ok(
      spans.some(
        (s) =>
          s.service === 'baton-results' &&
          s.attributes['db.system.name'] === 'redis' &&
          chain(s).includes('baton-results:grpc.baton.v1.ResultsService/RecordNodeResults'),
      ),
      "the results service's Redis calls are spans inside the run trace",
    );
    assert.ok(
      spans.some((s) => s.service === 'baton-scheduler' && s.attributes['db.system.name'] === 'redis'),
      "so are the scheduler's (discovery)",
    );

    // Every RecordNodeResults so far (each node's RUNNING and its final result) is in this run's
    // trace: none lands in a connection's trace or stands alone.
    const recordCalls = (): ReceivedSpan[] =>
      receiver.spans.filter((s) => s.service === 'baton-results' && s.name === 'grpc.baton.v1.ResultsService/RecordNodeResults' && s.kind === 2);
    await waitFor(
      'the run to finish',
      async () => (await fetch(`http://${metricsAt.get('results')}/metrics`)).text().then((t) => /^baton_runs_total\{state="RUN_STATE_FAILED"\} 1$/m.test(t)),
      30_000,
    );
    assert.deepEqual(
      recordCalls()
        .filter((s) => s.traceId !== root.traceId)
        .map((s) => s.traceId),
      [],
      'no RecordNodeResults outside the run trace',
    );
    // demo::fail ends within the agent's hold of its TaskStarted, which is then never sent.
    assert.deepEqual(
      inTrace().filter((s) => s.name === 'baton.record_started'),
      [],
      'no TaskStarted recorded for a task that ended within the hold',
    );
    // Redis statements name the command and keys only: no Lua source travels in a span.
    for (const s of receiver.spans.filter((x) => x.attributes['db.system.name'] === 'redis')) {
      const statement = String(s.attributes['db.query.text'] ?? s.attributes['db.statement'] ?? '');
      assert.ok(!/\n|redis\.call|KEYS\[/.test(statement), `a Redis span carries a script or values: ${statement.slice(0, 120)}`);
    }
    assert.ok(!receiver.spans.some((s) => s.statusMessage.includes('NOSCRIPT')), 'scripts are loaded when Redis connects: no NOSCRIPT error spans');
    assert.equal(root.resource['deployment.environment.name'], 'ci-trace-test', 'OTEL_RESOURCE_ATTRIBUTES is honoured');
  });

  it("makes no span for heartbeats or the agents' streams, even after many heartbeats", async () => {
    const heartbeats = async (): Promise<number> => {
      const text = await (await fetch(`http://${metricsAt.get('scheduler')}/metrics`)).text();
      return Number(/^baton_agent_heartbeats_total (\S+)$/m.exec(text)?.[1] ?? 0);
    };
    const before = await heartbeats();
    await waitFor('three more heartbeats from each agent', async () => (await heartbeats()) >= before + 9, 30_000);
    // Let every process export what it has (the batch delay is 100 ms), then look: the CLI's
    // own run below flushes nothing of the services, so wait for a span that is surely later.
    const marker = await runCli(['tasks', 'status', '00000000000000000000000000000000', '--json'], {
      ...fleet.env,
      OTEL_SDK_DISABLED: 'false',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    });
    assert.notEqual(marker.code, 0);
    await waitFor(
      'the results service span of that look-up',
      () => receiver.spans.some((s) => s.service === 'baton-results' && s.name === 'grpc.baton.v1.ResultsService/GetRunStatus'),
      30_000,
    );
    assert.deepEqual(
      receiver.spans.filter((s) => s.name.includes('/Connect')).map((s) => `${s.service}:${s.name}`),
      [],
      'the agent streams make no span',
    );
    const roots = receiver.spans.filter((s) => s.parentSpanId === '').map((s) => `${s.service}:${s.name}`);
    const allowed = /^(baton-scheduler:grpc\.baton\.v1\.SchedulerService\/(RunTask|StartRun)|baton-cli:baton( [a-z]+){0,2})$/;
    assert.deepEqual(
      roots.filter((r) => !allowed.test(r)),
      [],
      "every trace starts at an operator's request, none at a heartbeat or a connection",
    );
  });

  it("names a CLI span after Baton's own command words, never after an argument or a typo", async () => {
    const env = { ...fleet.env, OTEL_SDK_DISABLED: 'false', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint };
    const typo = await runCli(['frobnicate-7c1d', 'secret-arg-7c1d'], env);
    assert.equal(typo.code, 2);
    const status = await runCli(['tasks', 'status', 'ffffffffffffffffffffffffffff7c1d'], env);
    assert.notEqual(status.code, 0);
    await waitFor(
      'the two CLI spans',
      () => receiver.spans.filter((s) => s.service === 'baton-cli' && (s.name === 'baton' || s.name === 'baton tasks status')).length >= 2,
      30_000,
    );
    assert.deepEqual(
      receiver.spans
        .filter((s) => s.name.includes('7c1d') || Object.values(s.attributes).some((v) => String(v).includes('secret-arg-7c1d')))
        .map((s) => s.name),
      [],
    );
  });

  it('roots the trace of `baton tasks run` in the CLI span, continued by StartRun and the agent that ran it', async () => {
    const cli = await runCli(['tasks', 'run', 'demo::echo', '--message', 'traced-output-5e2b', '-I', 'node3', '--json'], {
      ...fleet.env,
      OTEL_SDK_DISABLED: 'false',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    });
    assert.equal(cli.code, 0, cli.stderr);
    const root = await waitFor('the CLI span', () => receiver.spans.find((s) => s.service === 'baton-cli' && s.name === 'baton tasks run'), 30_000);
    assert.equal(root.parentSpanId, '', 'the CLI span is the root');
    const runTask = await waitFor(
      'the StartRun server span',
      () =>
        receiver.spans.find(
          (s) => s.traceId === root.traceId && s.service === 'baton-scheduler' && s.name === 'grpc.baton.v1.SchedulerService/StartRun' && s.kind === 2,
        ),
      30_000,
    );
    const execution = await waitFor('node3 execution span', () => receiver.spans.find((s) => s.traceId === root.traceId && s.name === 'agent.execute'), 30_000);
    assert.equal(execution.attributes['baton.node'], 'node3');
    assert.equal(execution.attributes['baton.exit_code'], 0);
    assert.equal(runTask.attributes['baton.task'], 'demo::echo');
    assert.match(cli.stdout, /traced-output-5e2b/, 'the task printed its message');
    await waitFor(
      'the results service to record node3',
      () =>
        receiver.spans.some(
          (s) => s.traceId === root.traceId && s.service === 'baton-results' && s.name === 'grpc.baton.v1.ResultsService/RecordNodeResults' && s.kind === 2,
        ),
      30_000,
    );
    const leaks = receiver.spans.filter((s) => Object.values(s.attributes).some((v) => String(v).includes('traced-output-5e2b')));
    assert.deepEqual(
      leaks.map((s) => `${s.service}:${s.name}`),
      [],
      'task input and output reach no span attribute',
    );
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
    // Every state a run entered counts, not only the first and the last.
    assert.equal(value(results, 'baton_runs_total{state="RUN_STATE_RUNNING"}'), 2);
    assert.equal(value(results, 'baton_runs_total{state="RUN_STATE_PENDING"}'), 2);
    const agent = await scrape('node1');
    assert.ok(value(agent, 'baton_agent_downloaded_bytes_total') > 0, 'node1 downloaded demo::fail');
    assert.ok(value(agent, 'baton_agent_cache_lookups_total{result="miss"}') >= 1);

    // Each family only where it is fed: no zero-valued look-alikes on other targets.
    const families = (text: string): string[] =>
      [...text.matchAll(/^# TYPE (baton_\S+) /gm)]
        .map((m) => m[1])
        .filter((n) => !/^baton_(process|nodejs)_/.test(n))
        .sort();
    assert.deepEqual(families(await scrape('metadata')), []);
    assert.deepEqual(families(results), ['baton_redis_errors_total', 'baton_runs_total']);
    assert.deepEqual(families(agent), ['baton_agent_cache_lookups_total', 'baton_agent_downloaded_bytes_total']);
    assert.ok(!families(scheduler).includes('baton_runs_total'));

    // What Prometheus's own linter says of every target.
    for (const name of ['metadata', 'scheduler', 'results', 'node1']) {
      const check = spawnSync('promtool', ['check', 'metrics'], { input: await scrape(name), encoding: 'utf8' });
      assert.ok(!check.error, `promtool is not installed (scripts/install-deps.sh installs Debian's prometheus): ${String(check.error)}`);
      assert.equal(check.status, 0, `promtool check metrics on ${name}: ${check.stdout}${check.stderr}`);
      assert.equal(check.stdout + check.stderr, '', `promtool has remarks on ${name}`);
    }
  });

  it("carries a TaskStarted the agent held into the run's trace, recorded by the scheduler", async () => {
    const { taskId } = await unary(
      scheduler,
      scheduler.runTask,
      RunTaskRequest.fromPartial({
        task: 'runs::sleep',
        inputJson: '{"seconds": 2}',
        filter: { identities: ['node3'], classes: [], agents: [], facts: [], compound: [] },
      }),
      { deadlineMs: 60_000 },
    );
    // The agent's execution span, the TaskStarted's parent, is exported once the task has ended.
    await waitFor(
      'the TaskStarted span of the run and its parents',
      () => runTrace(taskId).some((s) => s.name === 'baton.record_started') && runTrace(taskId).some((s) => s.name === 'agent.execute'),
      30_000,
    );
    const spans = runTrace(taskId);
    const started = spans.filter((s) => s.name === 'baton.record_started');
    assert.deepEqual(
      started.map((s) => s.attributes['baton.node']),
      ['node3'],
    );
    assert.deepEqual(chainOf(spans, started[0]).slice(0, 4), [
      'baton-scheduler:grpc.baton.v1.SchedulerService/RunTask',
      'baton-scheduler:baton.dispatch',
      'baton-agent:agent.execute',
      'baton-scheduler:baton.record_started',
    ]);
  });
});
