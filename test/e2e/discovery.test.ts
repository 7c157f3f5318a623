import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { StatusDocument } from '../../cli/status-document';
import { status, type ServiceError } from '@grpc/grpc-js';
import { Filter } from '../../gen/baton/v1/filter';
import { SchedulerServiceClient } from '../../gen/baton/v1/scheduler_service';
import { readServiceError } from '../../lib/errors';
import { makeClient, unary } from '../../lib/grpc-client';
import { waitFor } from '../helpers/wait';
import { runCli, type CliRun } from '../helpers/cli';
import { useDevStack } from '../helpers/dev-stack';

/**
 * Discovery end to end: redis-server, the three services and three agents as
 * processes (dev profiles: node1 web/ams1, node2 db/fra1, node3 cache/ams1), driven through
 * `baton discover` and `baton tasks run` with every kind of filter flag, including a second run
 * picked by the results of the first.
 */
describe('baton discover and filtered runs, end to end on three agents', () => {
  const fleet = useDevStack({ agents: 3 });

  const discover = async (args: string[], expectedExit = 0): Promise<CliRun> => {
    const res = await runCli(['discover', ...args], fleet.env);
    assert.equal(res.code, expectedExit, `${args.join(' ')}\n${res.stdout}\n${res.stderr}`);
    return res;
  };
  const lines = (run: CliRun): string[] => run.stdout.split('\n').filter((l) => l !== '');

  it('lists the nodes each filter flag selects, one identity per line', async () => {
    assert.deepEqual(lines(await discover([])), ['node1', 'node2', 'node3']);
    assert.deepEqual(lines(await discover(['-I', '/^node[12]$/'])), ['node1', 'node2']);
    assert.deepEqual(lines(await discover(['-C', 'ROLE::WEB'])), ['node1']);
    assert.deepEqual(lines(await discover(['-F', 'datacenter=ams1'])), ['node1', 'node3']);
    assert.deepEqual(lines(await discover(['-F', 'dev_index>=2'])), ['node2', 'node3']);
    assert.deepEqual(lines(await discover(['-A', 'bolt_tasks', '-F', 'role=~^ca'])), ['node3']);
    assert.deepEqual(lines(await discover(['-W', 'baton_dev datacenter=ams1', '-W', 'dev_index<3'])), ['node1']);
    assert.deepEqual(lines(await discover(['-S', 'role::db or (datacenter=ams1 and not role=web)'])), ['node2', 'node3']);
  });

  it('prints the nodes with facts as JSON, exits 3 when nothing matched, and rejects bad syntax naming the column', async () => {
    const doc = JSON.parse((await discover(['-I', 'node2', '--json'])).stdout) as {
      nodes: Array<{ identity: string; facts: Record<string, unknown>; online: boolean }>;
      offline_matches: number;
    };
    assert.deepEqual(
      doc.nodes.map((n) => [n.identity, n.online, n.facts.role]),
      [['node2', true, 'db']],
    );
    assert.equal(doc.offline_matches, 0);
    assert.equal((await discover(['-C', 'role::none'], 3)).stdout, '');
    const bad = await discover(['-S', 'role::web and ('], 2);
    assert.match(bad.stderr, /^baton: -S: expected .* at column 16 of "role::web and \("\n$/);
  });

  it('answers a 20,000-deep compound filter and unsupported regexes within 1 s, naming the field, and a pathological regex at once', async () => {
    const scheduler = makeClient(SchedulerServiceClient, fleet.stack.addresses.scheduler);
    try {
      const refused = async (filter: Partial<Filter>) => {
        const started = Date.now();
        const err = await unary(scheduler, scheduler.discoverNodes, { filter: Filter.fromPartial(filter), includeOffline: false }).then(
          () => assert.fail(`${JSON.stringify(filter).slice(0, 100)} was answered`),
          (e: ServiceError) => e,
        );
        const report = readServiceError(err);
        assert.ok(Date.now() - started < 1_000, `answered in ${Date.now() - started} ms`);
        assert.equal(report.code, status.INVALID_ARGUMENT, report.message);
        assert.doesNotMatch(report.message, /\n/);
        return report;
      };
      const deep = await refused({ compound: ['('.repeat(20_000) + 'role::web' + ')'.repeat(20_000)] });
      assert.match(deep.message, /^filter\.compound\[0\]: expected at most 64 nested parentheses and negations at column 65 /);
      assert.ok(deep.message.length < 400, `a short message: ${deep.message.length} characters`);
      // One prefix: the message names the field, the BadRequest entry names it beside its description.
      assert.deepEqual(
        deep.violations.map((v) => v.field),
        ['filter.compound[0]'],
      );
      assert.match(deep.violations[0].description, /^expected at most 64 nested parentheses and negations at column 65 /);
      const backref = await refused({ identities: ['/^(node)\\1$/'] });
      assert.match(backref.message, /^filter\.identities\[0\]: \/.* uses a backreference/);
      const lookahead = await refused({ compound: ['role =~ /^(?!web)/'] });
      assert.match(lookahead.message, /^filter\.compound\[0\]: expected a regular expression without a lookahead/);

      // A regex a backtracking engine can be made to stall on (with a value like aaa…b) is run like any other.
      const started = Date.now();
      const found = await unary(scheduler, scheduler.discoverNodes, {
        filter: Filter.fromPartial({ identities: ['/^(a|a)*$/', '/^node1$/'], compound: ['role =~ /^(a|a)*$/ or role::web'] }),
        includeOffline: false,
      });
      assert.deepEqual(
        found.nodes.map((n) => n.identity),
        ['node1'],
      );
      assert.ok(Date.now() - started < 1_000, `answered in ${Date.now() - started} ms`);
    } finally {
      scheduler.close();
    }
  });

  it('picks the nodes where an earlier run failed with -S bolt_task(...).exitcode > 0 for a second run', async () => {
    const first = await runCli(['tasks', 'run', 'demo::fail', '-I', 'node1', '-I', 'node3'], fleet.env);
    assert.equal(first.code, 1, `${first.stdout}\n${first.stderr}`);
    const failedRun = /Summary for task ([0-9a-f]{32})/.exec(first.stdout)?.[1];
    assert.ok(failedRun, first.stdout);
    const select = `bolt_task('${failedRun}').exitcode > 0`;
    // node2 never ran demo::fail: it must not match (Choria's default exit code 127 made it match).
    assert.deepEqual(lines(await discover(['-S', select])), ['node1', 'node3']);
    assert.deepEqual(lines(await discover(['-S', `bolt_task('${failedRun}').known == false`])), ['node2']);

    const second = await runCli(['tasks', 'run', 'demo::echo', '--message', 'recover', '-S', select, '--json'], fleet.env);
    assert.equal(second.code, 0, `${second.stdout}\n${second.stderr}`);
    const doc = JSON.parse(second.stdout) as StatusDocument;
    assert.deepEqual(
      doc.items.map((i) => [i.host, i.task, i.exitcode]),
      [
        ['node1', 'demo::echo', 0],
        ['node3', 'demo::echo', 0],
      ],
    );
  });

  it('counts matches that are offline, and records them as not responding in a run', async () => {
    await fleet.stack.stopAgent('node3');
    await waitFor(
      'node3 to be offline',
      async () => (await runCli(['discover', '-F', 'datacenter=ams1'], fleet.env)).stderr === '1 more matched but are offline\n',
    );
    assert.deepEqual(lines(await discover(['-F', 'datacenter=ams1'])), ['node1']);
    assert.deepEqual(lines(await discover(['-F', 'datacenter=ams1', '--offline'])), ['node1', 'node3 (offline)']);

    const run = await runCli(['tasks', 'run', 'demo::uptime', '-F', 'datacenter=ams1', '--json'], fleet.env);
    const doc = JSON.parse(run.stdout) as StatusDocument;
    assert.deepEqual(
      doc.items.map((i) => [i.host, i.exitcode, i.statusmsg]),
      [
        ['node1', 0, ''],
        ['node3', -1, 'no response: the node was offline when the run started'],
      ],
    );
    assert.equal(run.code, 1, `${run.stdout}\n${run.stderr}`);
  });
});
