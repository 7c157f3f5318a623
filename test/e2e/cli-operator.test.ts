import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StatusDocument } from '../../cli/status-document';
import { runCli, runCliPipeline, type CliRun } from '../helpers/cli';
import { cliEnvironmentpath } from '../helpers/cli-environment';
import { useDevStack } from '../helpers/dev-stack';

const dir = mkdtempSync(join(tmpdir(), 'baton-cli-operator-'));

describe('the baton CLI as an operator uses it: failures, values, node lists', () => {
  const fleet = useDevStack({ agents: 3, environmentpath: cliEnvironmentpath() });
  const baton = (...args: string[]): Promise<CliRun> => runCli(args, fleet.env);
  const show = (r: CliRun) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
  const taskIdOf = (r: CliRun) => /\(task id ([0-9a-f]{32})\)/.exec(r.stdout)?.[1] ?? (JSON.parse(r.stdout) as StatusDocument).summary.taskid;

  it('shows each failed node as one block: the status on one line, stderr once, no empty _output; the summary names the failed nodes', async () => {
    const r = await baton('tasks', 'run', 'demo::fail', '-I', 'node1,node2');
    assert.equal(r.code, 1, show(r));
    for (const node of ['node1', 'node2']) {
      assert.match(
        r.stdout,
        new RegExp(
          `^${node} +puppetlabs\\.tasks/task-error: The task failed with exit code 3 and no stdout\\n {3}stderr: demo::fail failing on purpose\\n\\n`,
          'm',
        ),
      );
    }
    assert.equal(r.stdout.split('failing on purpose').length - 1, 2, 'stderr once per node');
    assert.doesNotMatch(r.stdout, /_output/);
    assert.match(r.stdout, /^ +Failed: 2 \(node1, node2\)$/m);
    const summary = await baton('tasks', 'status', taskIdOf(r), '--summary');
    assert.equal(summary.code, 1, show(summary));
    assert.match(summary.stdout, /^Summary for task [0-9a-f]{32}\n/, '--summary prints the summary alone');
    assert.doesNotMatch(summary.stdout, /failing on purpose/);
  });

  it('reports wrong values as given, at the right index, and names JSON that does not parse', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--count', '9'], /parameter 'count' expects an Integer\[1, 5\] value, got Integer\[9, 9\]/],
      [['--port', '99999'], /parameter 'port' expects an Integer\[1, 65535\] value, got Integer\[99999, 99999\]/],
      [['--numbers', '1', '--numbers', 'x'], /parameter 'numbers' index 1 expects an Integer value, got String/],
      [['--opts', '{"a":'], /^baton: --opts: could not parse JSON '\{"a":': /],
    ];
    for (const [args, expected] of cases) {
      const r = await baton('tasks', 'run', 'clitest::typed', ...args, '-I', 'node1');
      assert.equal(r.code, 2, `${args.join(' ')}: ${show(r)}`);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, expected, args.join(' '));
    }
  });

  it('takes comma-separated -I targets and --nodes FILE or stdin, one identity per line', async () => {
    const comma = await baton('discover', '-I', 'node1,node3');
    assert.equal(comma.stdout, 'node1\nnode3\n', show(comma));
    const file = join(dir, 'nodes.txt');
    writeFileSync(file, '# web and cache\nnode1\n\nnode3\n');
    const fromFile = await baton('tasks', 'run', 'demo::echo', '--message', 'f', '--nodes', file, '--json');
    assert.equal(fromFile.code, 0, show(fromFile));
    assert.deepEqual(
      (JSON.parse(fromFile.stdout) as StatusDocument).items.map((i) => i.host),
      ['node1', 'node3'],
    );
    const stdin = await runCliPipeline('printf "node2\\n" | $BATON discover --nodes -', fleet.env);
    assert.equal(stdin.stdout, 'node2\n', show(stdin));
    const empty = await baton('discover', '--nodes', join(dir, 'nodes.txt'), '-I', 'nosuch');
    assert.equal(empty.code, 0, 'ORed with -I');
    const none = await baton('discover', '-I', 'nosuch1,nosuch2');
    assert.equal(none.code, 3, show(none));
    assert.equal(none.stdout, '');
    assert.equal(none.stderr, 'no node matched\n');
  });
});
