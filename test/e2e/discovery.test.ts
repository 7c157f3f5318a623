import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { StatusDocument } from '../../cli/status-document';
import { waitFor } from '../helpers/wait';
import { runCli, type CliRun } from '../helpers/cli';
import { useDevStack } from '../helpers/dev-stack';

/**
 * Discovery end to end (issue 5): redis-server, the three services and three agents as
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
    const doc = JSON.parse((await discover(['-I', 'node2', '--json'])).stdout) as { nodes: Array<{ identity: string; facts: Record<string, unknown>; online: boolean }>; offline_matches: number };
    assert.deepEqual(doc.nodes.map((n) => [n.identity, n.online, n.facts.role]), [['node2', true, 'db']]);
    assert.equal(doc.offline_matches, 0);
    assert.equal((await discover(['-C', 'role::none'], 3)).stdout, '');
    const bad = await discover(['-S', 'role::web and ('], 2);
    assert.match(bad.stderr, /^baton: -S: expected .* at column 16 of "role::web and \("\n$/);
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
    assert.deepEqual(doc.items.map((i) => [i.host, i.task, i.exitcode]), [['node1', 'demo::echo', 0], ['node3', 'demo::echo', 0]]);
  });

  it('counts matches that are offline, and records them as not responding in a run', async () => {
    await fleet.stack.stopAgent('node3');
    await waitFor('node3 to be offline', async () => (await runCli(['discover', '-F', 'datacenter=ams1'], fleet.env)).stderr === '1 more matched but are offline\n');
    assert.deepEqual(lines(await discover(['-F', 'datacenter=ams1'])), ['node1']);
    assert.deepEqual(lines(await discover(['-F', 'datacenter=ams1', '--offline'])), ['node1', 'node3 (offline)']);

    const run = await runCli(['tasks', 'run', 'demo::uptime', '-F', 'datacenter=ams1', '--json'], fleet.env);
    const doc = JSON.parse(run.stdout) as StatusDocument;
    assert.deepEqual(doc.items.map((i) => [i.host, i.exitcode, i.statusmsg]), [['node1', 0, ''], ['node3', -1, 'no response: the node was offline when the run started']]);
    assert.equal(run.code, 1, `${run.stdout}\n${run.stderr}`);
  });
});
