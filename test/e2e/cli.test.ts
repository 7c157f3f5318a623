import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StatusDocument } from '../../cli/status-document';
import { runCli, type CliRun } from '../helpers/cli';
import { cliEnvironmentpath } from '../helpers/cli-environment';
import { useDevStack } from '../helpers/dev-stack';

describe('the baton CLI as a separate process against a running stack', () => {
  const fleet = useDevStack({ agents: 2, environmentpath: cliEnvironmentpath() });
  const baton = (...args: string[]): Promise<CliRun> => runCli(args, fleet.env);
  const show = (r: CliRun) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

  it('lists task names in columns, with descriptions in --detail, and as JSON', async () => {
    const list = await baton('tasks');
    assert.equal(list.code, 0, show(list));
    assert.match(list.stdout, /^Known tasks in the production environment\n\n {2}clitest::big +clitest::params +clitest::typed/m);
    assert.ok(
      list.stdout.split('\n').every((l) => l.length <= 80),
      'columns fit 80 characters when not a terminal',
    );
    assert.match(list.stdout, /Pass option --detail to see task descriptions/);
    assert.equal(list.stderr, '');

    const detail = await baton('tasks', 'list', '--detail');
    assert.equal(detail.code, 0, show(detail));
    assert.match(detail.stdout, /^ {2}demo::echo +Prints its message back as JSON/m);
    assert.doesNotMatch(detail.stdout, /--detail/);

    const json = await baton('tasks', '--json');
    assert.equal(json.code, 0, show(json));
    const names = (JSON.parse(json.stdout) as Array<{ name: string }>).map((t) => t.name);
    assert.deepEqual(names, ['clitest::big', 'clitest::params', 'clitest::typed', 'demo', 'demo::echo', 'demo::fail', 'demo::uptime', 'runs::sleep']);
  });

  it('shows a task: parameters sorted with types, required and defaults, files with sizes, a usage line', async () => {
    for (const args of [
      ['tasks', 'clitest::params'],
      ['tasks', 'show', 'clitest::params'],
    ]) {
      const r = await baton(...args);
      assert.equal(r.code, 0, show(r));
      assert.match(
        r.stdout,
        /^clitest::params - Prints its input back\n\nTask Parameters:\n {2}force +A switch \(Optional\[Boolean\]\)\n {2}name +A name \(String\[1\]\) required\n/,
      );
      assert.match(r.stdout, /^ {2}port +A port \(Optional\[Integer\[1,65535\]\]\) default: 80$/m);
      assert.match(r.stdout, /^ {2}timeout +Clashes with --timeout \(Optional\[Integer\]\) \(flag --param-timeout\)$/m);
      assert.match(r.stdout, /^Task Files:\n {2}clitest\/tasks\/params\.sh +\d+ bytes$/m);
      assert.match(r.stdout, /^Use 'baton tasks run clitest::params \[--\[no-\]force\] --name NAME .*\[--param-timeout TIMEOUT\].*' to run this task$/m);
    }
  });

  it('names the closest tasks for an unknown one, in one line, exit 2', async () => {
    const r = await baton('tasks', 'demo::ecko');
    assert.equal(r.code, 2, show(r));
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^baton: unknown task 'demo::ecko': not found in the production environment; did you mean demo::echo(, [a-z:]+)*\?\n$/);
    const run = await baton('tasks', 'run', 'demo::ecko', '--message', 'x');
    assert.equal(run.code, 2, show(run));
    assert.match(run.stderr, /^baton: unknown task 'demo::ecko'.*did you mean demo::echo.*\?\n$/);
  });

  it('runs a task with mco messages, only failures listed, exit 0 when all succeeded and 1 when any failed', async () => {
    const ok = await baton('tasks', 'run', 'demo::echo', '--message', 'hi');
    assert.equal(ok.code, 0, show(ok));
    assert.match(ok.stdout, /Attempting to download and run task demo::echo on 2 nodes \(task id [0-9a-f]{32}\)\n/);
    assert.match(ok.stdout, /Downloading and verifying 1 file\(s\) from the metadata service to all nodes\n/);
    assert.match(ok.stdout, /Running task demo::echo and waiting up to 60 seconds for it to complete\n/);
    assert.doesNotMatch(ok.stdout, /^node1/m, 'successful nodes are not listed without -v');
    assert.match(ok.stdout, /Successful: 2\n +Failed: 0\n/);
    assert.equal(ok.stderr, '', 'no progress when stderr is not a terminal');

    const verbose = await baton('tasks', 'run', 'demo::echo', '--message', 'hi', '-v', '-I', 'node1');
    assert.equal(verbose.code, 0, show(verbose));
    assert.match(verbose.stdout, /^node1 +succeeded\n {3}\{.*"message":"hi"/m);

    const failed = await baton('tasks', 'run', 'demo::fail');
    assert.equal(failed.code, 1, show(failed));
    assert.match(failed.stdout, /^node1 +puppetlabs\.tasks\/task-error/m);
    assert.match(failed.stdout, /^node2 +puppetlabs\.tasks\/task-error/m);
    assert.match(failed.stdout, /Successful: 0\n +Failed: 2 \(node1, node2\)\n/);
    assert.doesNotMatch(failed.stdout, /NaN/);

    const summary = await baton('tasks', 'run', 'demo::fail', '--summary');
    assert.equal(summary.code, 1, show(summary));
    assert.doesNotMatch(summary.stdout, /^node1/m, '--summary prints no per-node lines');
    assert.match(summary.stdout, /Failed: 2/);
  });

  it('prints only the status document on stdout with --json', async () => {
    const r = await baton('tasks', 'run', 'demo::echo', '--message', 'j', '--json');
    assert.equal(r.code, 0, show(r));
    const doc = JSON.parse(r.stdout) as StatusDocument;
    assert.equal(doc.summary.nodes, 2);
    assert.equal(doc.summary.success, true);
    assert.deepEqual(
      doc.items.map((i) => (i.stdout as { message: string }).message),
      ['j', 'j'],
    );
  });

  it('builds the input from typed flags, --input files and the --param- flag of a clashing name; flags override --input', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-cli-input-'));
    writeFileSync(join(dir, 'in.yaml'), 'name: from-yaml\nport: 8080\ntags: [a]\n');
    const r = await baton(
      'tasks',
      'run',
      'clitest::params',
      '--input',
      `@${join(dir, 'in.yaml')}`,
      '--name',
      'from-flag',
      '--no-force',
      '--tags',
      'x',
      '--tags',
      'y',
      '--opts',
      '{"k":[1,2]}',
      '--param-timeout',
      '7',
      '--timeout',
      '30',
      '-I',
      'node1',
      '--json',
    );
    assert.equal(r.code, 0, show(r));
    const input = ((JSON.parse(r.stdout) as StatusDocument).items[0].stdout as { input: Record<string, unknown> }).input;
    assert.equal(input.name, 'from-flag');
    assert.equal(input.port, 8080);
    assert.equal(input.force, false);
    assert.deepEqual(input.tags, ['x', 'y']);
    assert.deepEqual(input.opts, { k: [1, 2] });
    assert.equal(input.timeout, 7);

    const inline = await baton('tasks', 'run', 'clitest::params', '--input', '{"name":"inline"}', '-I', 'node2', '--json');
    assert.equal(inline.code, 0, show(inline));
    assert.equal(((JSON.parse(inline.stdout) as StatusDocument).items[0].stdout as { input: { name: string } }).input.name, 'inline');
  });

  it('refuses bad input in one line naming every bad parameter, exit 2, and nothing runs', async () => {
    const r = await baton('tasks', 'run', 'demo::echo', '--count', 'many');
    assert.equal(r.code, 2, show(r));
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^baton: .*'count' expects a value of type/);
    assert.match(lines[0], /'message'/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');

    const usage = await baton('tasks', 'run', 'demo::echo', '--message', 'x', '--batch', '0%');
    assert.equal(usage.code, 2, show(usage));
    assert.match(usage.stderr, /^baton: --batch expects a number of nodes >= 1 or a percentage from 1% to 100%, got '0%'\n$/);
  });

  it('exits 3 with one line when no node matched, and 69 naming the address of an unreachable service', async () => {
    const none = await baton('tasks', 'run', 'demo::echo', '--message', 'x', '-I', 'nosuchnode');
    assert.equal(none.code, 3, show(none));
    assert.equal(none.stderr.trimEnd().split('\n').length, 1);

    const down = await runCli(['tasks', 'list'], { ...fleet.env, BATON_METADATA: '127.0.0.1:1' });
    assert.equal(down.code, 69, show(down));
    assert.match(down.stderr, /^baton: cannot reach the metadata service at 127\.0\.0\.1:1: .*ECONNREFUSED/);
  });
});
