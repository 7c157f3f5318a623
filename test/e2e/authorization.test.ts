import assert from 'node:assert/strict';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { status, type ServiceError } from '@grpc/grpc-js';
import Redis from 'ioredis';
import { FactOperator, Filter } from '../../gen/baton/v1/filter';
import { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { RunState } from '../../gen/baton/v1/run';
import { RunTaskRequest, SchedulerServiceClient } from '../../gen/baton/v1/scheduler_service';
import { readServiceError } from '../../lib/errors';
import { makeClient, unary } from '../../lib/grpc-client';
import { packageRoot } from '../../lib/package-root';
import { REDACTED_VALUE } from '../../lib/redaction';
import { runCli } from '../helpers/cli';
import { useDevStack } from '../helpers/dev-stack';
import { streamOutcome } from '../helpers/raw-call';

/**
 * Authorization and audit end to end, on a stack with mutual TLS where
 * callers are their certificates: the scheduler and the results service load one policy file,
 * the results service runs with own-results-only, and both write audit lines. Dev agents:
 * node1 is role=web, node2 role=db, node3 role=cache.
 */

const root = mkdtempSync(join(tmpdir(), 'baton-authz-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** The demo module, runs::sleep, and vault::login whose `password` is declared sensitive. */
function environmentpath(): string {
  const modules = join(root, 'env', 'production', 'modules');
  cpSync(join(packageRoot(), 'examples', 'modules', 'production', 'modules', 'demo'), join(modules, 'demo'), { recursive: true });
  cpSync(join(packageRoot(), 'test', 'fixtures', 'modules', 'production', 'modules', 'runs'), join(modules, 'runs'), { recursive: true });
  mkdirSync(join(modules, 'vault', 'tasks'), { recursive: true });
  writeFileSync(
    join(modules, 'vault', 'tasks', 'login.json'),
    JSON.stringify({
      description: 'Pretends to log in; its password must never reach a log',
      input_method: 'environment',
      parameters: { user: { type: 'String[1]' }, password: { type: 'String[1]', sensitive: true }, token: { type: 'Optional[Sensitive[String]]' } },
    }),
  );
  writeFileSync(join(modules, 'vault', 'tasks', 'login.sh'), '#!/bin/sh\necho "{\\"user\\": \\"$PT_user\\"}"\n');
  chmodSync(join(modules, 'vault', 'tasks', 'login.sh'), 0o755);
  return join(root, 'env');
}

const POLICY = `
rules:
  - name: no-bob
    effect: deny
    callers: [cert=bob]
  - name: web-operators
    effect: allow
    callers: [cert=alice, /^cert=web-/]
    actions: [run, cancel]
    tasks: ['demo::*', 'vault::*', 'runs::sleep']
    environments: [production]
    nodes: "role=web"
  - name: web-discovery
    effect: allow
    callers: [cert=alice]
    actions: [discover]
    nodes: "role=web"
  - name: readers
    effect: allow
    actions: [read]
`;

const policyFile = join(root, 'policy.yaml');
writeFileSync(policyFile, POLICY);
const schedulerAudit = join(root, 'scheduler-audit.log');
const resultsAudit = join(root, 'results-audit.log');

const h = useDevStack({
  tls: true,
  environmentpath: environmentpath(),
  serviceArgs: {
    scheduler: ['--policy-file', policyFile, '--audit-log', schedulerAudit],
    results: ['--policy-file', policyFile, '--audit-log', resultsAudit, '--own-results-only'],
  },
});

const clients: { close(): void }[] = [];
after(() => clients.forEach((c) => c.close()));

/** The scheduler and results clients of operator `name` (its certificate, issued on first use). */
function as(name: string): { scheduler: SchedulerServiceClient; results: ResultsServiceClient } {
  const tls = h.stack.tls!.operator(name);
  const scheduler = makeClient(SchedulerServiceClient, h.stack.addresses.scheduler, tls);
  const results = makeClient(ResultsServiceClient, h.stack.addresses.results, tls);
  clients.push(scheduler, results);
  return { scheduler, results };
}

const web = Filter.fromPartial({ facts: [{ fact: 'role', operator: FactOperator.FACT_OPERATOR_EQUAL, value: 'web' }] });

function runRequest(task: string, input: Record<string, unknown>, extra: Partial<RunTaskRequest> = {}): RunTaskRequest {
  return RunTaskRequest.fromPartial({ task, inputJson: JSON.stringify(input), waitS: 60, ...extra });
}

async function rejected(p: Promise<unknown>): Promise<{ code: status; message: string }> {
  const err = await p.then(
    (v) => assert.fail(`expected the call to fail, got ${JSON.stringify(v)?.slice(0, 300)}`),
    (e: unknown) => e as ServiceError,
  );
  const report = readServiceError(err);
  return { code: report.code, message: report.message };
}

function auditLines(path: string): Record<string, unknown>[] {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Every Redis key of runs, results, run indexes and request ids. */
async function runKeys(): Promise<string[]> {
  const redis = new Redis(h.stack.addresses.redis);
  try {
    return [...(await redis.keys('baton:run*')), ...(await redis.keys('baton:request*'))].sort();
  } finally {
    redis.disconnect();
  }
}

/** Asserts `attempt` is PERMISSION_DENIED with `message`, and stored no run and no request id. */
async function deniedLeavingNothing(attempt: () => Promise<unknown>, message: string | RegExp): Promise<void> {
  const before = await runKeys();
  const { code, message: got } = await rejected(attempt());
  assert.equal(code, status.PERMISSION_DENIED, got);
  if (typeof message === 'string') assert.equal(got, message);
  else assert.match(got, message);
  assert.deepEqual(await runKeys(), before, 'a denied request stores nothing');
}

describe('authorization policy and audit', () => {
  let aliceRun = '';

  it('lets alice run demo::echo on the web node, and audits the run', async () => {
    const { scheduler } = as('alice');
    const r = await unary(scheduler, scheduler.runTask, runRequest('demo::echo', { message: 'hi' }, { filter: web }), { deadlineMs: 90_000 });
    assert.equal(r.run?.caller, 'cert=alice');
    assert.deepEqual(
      r.results.map((x) => x.host),
      ['node1'],
    );
    assert.equal(r.run?.state, RunState.RUN_STATE_SUCCEEDED);
    aliceRun = r.taskId;
    const line = auditLines(schedulerAudit).find((l) => l.event === 'run' && l.task_id === r.taskId);
    assert.ok(line, 'a run line');
    assert.deepEqual(
      { ...line, time: undefined },
      {
        time: undefined,
        service: 'scheduler',
        event: 'run',
        caller: 'cert=alice',
        task: 'demo::echo',
        environment: 'production',
        filter: { facts: [{ fact: 'role', operator: 'FACT_OPERATOR_EQUAL', value: 'web' }] },
        nodes: 1,
        offline: 0,
        task_id: r.taskId,
        batch: null,
        background: false,
        noop: false,
        run_as: null,
        request_id: null,
        input: { message: 'hi', count: 1 },
      },
    );
  });

  it('denies alice a run that selects a node outside role=web, naming the node, and stores nothing', async () => {
    const { scheduler } = as('alice');
    await deniedLeavingNothing(
      () => unary(scheduler, scheduler.runTask, runRequest('demo::echo', { message: 'everywhere' })),
      `cert=alice may not run demo::echo in production: no rule allows it (policy ${policyFile}, default deny); rule 'web-operators' allows it only where every node matches role=web, and node2 does not`,
    );
    const denial = auditLines(schedulerAudit).find((l) => l.event === 'denied' && l.caller === 'cert=alice' && l.action === 'run');
    assert.ok(denial);
    assert.equal(denial.rule, null);
    assert.equal(denial.nodes, 3);
    assert.deepEqual(denial.input_keys, ['message']);
    assert.equal(JSON.stringify(denial).includes('everywhere'), false, 'no input value in a denial line');
  });

  it('denies bob by rule, over the API and in the CLI as one line, and stores nothing', async () => {
    const { scheduler } = as('bob');
    await deniedLeavingNothing(
      () => unary(scheduler, scheduler.runTask, runRequest('demo::echo', { message: 'hi' }, { filter: web })),
      "cert=bob may not run demo::echo in production: rule 'no-bob' denies it",
    );
    const bob = h.stack.tls!.operator('bob');
    const before = await runKeys();
    const cli = await runCli(['tasks', 'run', 'demo::echo', '--message', 'hi', '-F', 'role=web'], {
      ...h.env,
      BATON_TLS_CERT: bob.cert,
      BATON_TLS_KEY: bob.key,
    });
    assert.notEqual(cli.code, 0);
    assert.deepEqual(cli.stderr.trim().split('\n'), ["baton: cert=bob may not run demo::echo in production: rule 'no-bob' denies it"]);
    assert.deepEqual(await runKeys(), before);
    const denial = auditLines(schedulerAudit).find((l) => l.event === 'denied' && l.caller === 'cert=bob');
    assert.equal(denial?.rule, 'no-bob');
  });

  it('redacts a sensitive parameter in the run line, and nowhere writes the secret', async () => {
    const { scheduler } = as('alice');
    const r = await unary(scheduler, scheduler.runTask, runRequest('vault::login', { user: 'root', password: 'hunter2-secret' }, { filter: web }), {
      deadlineMs: 90_000,
    });
    assert.equal(r.run?.state, RunState.RUN_STATE_SUCCEEDED);
    const line = auditLines(schedulerAudit).find((l) => l.task_id === r.taskId);
    assert.deepEqual(line?.input, { user: 'root', password: REDACTED_VALUE });
    assert.equal(readFileSync(schedulerAudit, 'utf8').includes('hunter2'), false);
  });

  it('allows discovery of web nodes only, and never to bob', async () => {
    const alice = as('alice').scheduler;
    const found = await unary(alice, alice.discoverNodes, { filter: web, includeOffline: false });
    assert.deepEqual(
      found.nodes.map((n) => n.identity),
      ['node1'],
    );
    const all = await rejected(unary(alice, alice.discoverNodes, { filter: undefined, includeOffline: false }));
    assert.equal(all.code, status.PERMISSION_DENIED);
    assert.match(
      all.message,
      /^cert=alice may not discover nodes: no rule allows it .*rule 'web-discovery' allows it only where every node matches role=web, and node\d does not$/,
    );
    const bob = as('bob').scheduler;
    assert.deepEqual(await rejected(unary(bob, bob.discoverNodes, { filter: web, includeOffline: false })), {
      code: status.PERMISSION_DENIED,
      message: "cert=bob may not discover nodes: rule 'no-bob' denies it",
    });
  });

  it('lets alice cancel her run and not bob, and audits the cancel', async () => {
    const alice = as('alice').scheduler;
    const started = await unary(alice, alice.runTask, runRequest('runs::sleep', { seconds: 120 }, { filter: web, background: true }), { deadlineMs: 90_000 });
    const bob = as('bob').scheduler;
    assert.deepEqual(await rejected(unary(bob, bob.cancelRun, { taskId: started.taskId })), {
      code: status.PERMISSION_DENIED,
      message: `cert=bob may not cancel run ${started.taskId} (runs::sleep in production): rule 'no-bob' denies it`,
    });
    const cancelled = await unary(alice, alice.cancelRun, { taskId: started.taskId });
    assert.ok(cancelled.nodes.length <= 1);
    const line = auditLines(schedulerAudit).find((l) => l.event === 'cancel' && l.task_id === started.taskId);
    assert.equal(line?.caller, 'cert=alice');
    assert.equal(line?.task, 'runs::sleep');
    assert.equal(line?.result, 'cancelled');
    const denial = auditLines(schedulerAudit).find((l) => l.event === 'denied' && l.action === 'cancel');
    assert.equal(denial?.task_id, started.taskId);
  });

  it('lets a caller read only its own runs under own-results-only, directly and through the scheduler', async () => {
    const owner = as('alice');
    const status1 = await unary(owner.results, owner.results.getRunStatus, { taskId: aliceRun });
    assert.equal(status1.run?.taskId, aliceRun);
    const carol = as('carol'); // `readers` lets anyone read; own-results-only narrows it to carol's runs
    const notHers = `run ${aliceRun} belongs to cert=alice; own-results-only lets cert=carol read only its own runs`;
    assert.deepEqual(await rejected(unary(carol.results, carol.results.getRunStatus, { taskId: aliceRun })), {
      code: status.PERMISSION_DENIED,
      message: notHers,
    });
    const direct = await streamOutcome(carol.results.watchRunEvents({ taskId: aliceRun, resumeToken: '', follow: false }));
    assert.equal(direct?.code, status.PERMISSION_DENIED);
    // The scheduler relays WatchRun for carol, forwarding her caller id: the same answer.
    const relayed = await streamOutcome(carol.scheduler.watchRun({ taskId: aliceRun, resumeToken: '' }));
    assert.equal(relayed?.code, status.PERMISSION_DENIED);
    assert.equal(readServiceError(relayed).message, notHers);
    const mine = await unary(carol.results, carol.results.listRuns, { pageSize: 50, pageToken: '' });
    assert.deepEqual(mine.runs, [], 'carol started no run');
    assert.deepEqual(await rejected(unary(carol.results, carol.results.listRuns, { pageSize: 50, pageToken: '', caller: 'cert=alice' })), {
      code: status.PERMISSION_DENIED,
      message: 'runs of cert=alice cannot be listed; own-results-only lets cert=carol list only its own runs',
    });
    const alices = await unary(owner.results, owner.results.listRuns, { pageSize: 50, pageToken: '' });
    assert.ok(alices.runs.length >= 2 && alices.runs.every((r) => r.caller === 'cert=alice'));
  });

  it("checks bolt_task() terms as reads for the operator, so another caller's run cannot pick nodes", async () => {
    const bolt = Filter.fromPartial({ compound: [`bolt_task('${aliceRun}').exitcode == 0`], facts: web.facts });
    const alice = as('alice').scheduler;
    const own = await unary(alice, alice.discoverNodes, { filter: bolt, includeOffline: false });
    assert.deepEqual(
      own.nodes.map((n) => n.identity),
      ['node1'],
    );
    const webCarol = as('web-carol').scheduler; // may run on web nodes (web-operators), reads only its own runs
    const { code, message } = await rejected(unary(webCarol, webCarol.runTask, runRequest('demo::echo', { message: 'x' }, { filter: bolt })));
    assert.equal(code, status.PERMISSION_DENIED);
    assert.equal(message, `run ${aliceRun} belongs to cert=alice; own-results-only lets cert=web-carol read only its own runs`);
    // Written before the results service answered, so already in the file.
    const denial = auditLines(resultsAudit).find((l) => l.event === 'denied' && l.caller === 'cert=web-carol');
    assert.deepEqual(
      { ...denial, time: undefined },
      {
        time: undefined,
        service: 'results',
        event: 'denied',
        caller: 'cert=web-carol',
        action: 'read',
        task: 'demo::echo',
        environment: 'production',
        task_id: aliceRun,
        rule: null,
        reason: message,
      },
    );
  });
});
