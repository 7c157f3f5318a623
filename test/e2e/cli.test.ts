import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../lib/package-root';
import type { StatusDocument } from '../../cli/status-document';
import { runCli, type CliRun } from '../helpers/cli';
import { useDevStack } from '../helpers/dev-stack';
import { runCliInPty } from '../helpers/pty';
import { waitFor } from '../helpers/wait';

/**
 * An environmentpath for these tests: the demo module, the runs::sleep fixture, and a
 * `clitest::params` task whose parameters exercise every kind of flag (a Boolean, an Array, a
 * Hash, and a `timeout` that clashes with `baton tasks run --timeout`). It prints its input back.
 */
function fixtureEnvironmentpath(): string {
  const root = mkdtempSync(join(tmpdir(), 'baton-cli-test-'));
  const modules = join(root, 'production', 'modules');
  cpSync(join(packageRoot(), 'examples', 'modules', 'production', 'modules', 'demo'), join(modules, 'demo'), { recursive: true });
  cpSync(join(packageRoot(), 'test', 'fixtures', 'modules', 'production', 'modules', 'runs'), join(modules, 'runs'), { recursive: true });
  mkdirSync(join(modules, 'clitest', 'tasks'), { recursive: true });
  writeFileSync(
    join(modules, 'clitest', 'tasks', 'params.json'),
    JSON.stringify({
      description: 'Prints its input back',
      input_method: 'stdin',
      parameters: {
        name: { description: 'A name', type: 'String[1]' },
        timeout: { description: 'Clashes with --timeout', type: 'Optional[Integer]' },
        force: { description: 'A switch', type: 'Optional[Boolean]' },
        tags: { description: 'Some tags', type: 'Optional[Array[String]]' },
        opts: { description: 'A hash', type: 'Optional[Hash]' },
        port: { description: 'A port', type: 'Optional[Integer[1,65535]]', default: 80 },
      },
    }),
  );
  writeFileSync(join(modules, 'clitest', 'tasks', 'params.sh'), '#!/bin/sh\ninput=$(cat)\nprintf \'{"input": %s}\\n\' "${input:-null}"\n');
  chmodSync(join(modules, 'clitest', 'tasks', 'params.sh'), 0o755);
  return root;
}

const HEX_ID = /[0-9a-f]{32}/;
const ESC = '\x1b';

describe('the baton CLI as a separate process against a running stack', () => {
  const fleet = useDevStack({ agents: 2, environmentpath: fixtureEnvironmentpath() });
  const baton = (...args: string[]): Promise<CliRun> => runCli(args, fleet.env);
  const show = (r: CliRun) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

  it('lists task names in columns, with descriptions in --detail, and as JSON', async () => {
    const list = await baton('tasks');
    assert.equal(list.code, 0, show(list));
    assert.match(list.stdout, /^Known tasks in the production environment\n\n {2}clitest::params +demo +demo::echo/m);
    assert.ok(list.stdout.split('\n').every((l) => l.length <= 80), 'columns fit 80 characters when not a terminal');
    assert.match(list.stdout, /Pass option --detail to see task descriptions/);
    assert.equal(list.stderr, '');

    const detail = await baton('tasks', 'list', '--detail');
    assert.equal(detail.code, 0, show(detail));
    assert.match(detail.stdout, /^ {2}demo::echo +Prints its message back as JSON/m);
    assert.doesNotMatch(detail.stdout, /--detail/);

    const json = await baton('tasks', '--json');
    assert.equal(json.code, 0, show(json));
    const names = (JSON.parse(json.stdout) as Array<{ name: string }>).map((t) => t.name);
    assert.deepEqual(names, ['clitest::params', 'demo', 'demo::echo', 'demo::fail', 'demo::uptime', 'runs::sleep']);
  });

  it('shows a task: parameters sorted with types, required and defaults, files with sizes, a usage line', async () => {
    for (const args of [['tasks', 'clitest::params'], ['tasks', 'show', 'clitest::params']]) {
      const r = await baton(...args);
      assert.equal(r.code, 0, show(r));
      assert.match(r.stdout, /^clitest::params - Prints its input back\n\nTask Parameters:\n {2}force +A switch \(Optional\[Boolean\]\)\n {2}name +A name \(String\[1\]\) required\n/);
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
    assert.match(ok.stdout, /Attempting to download and run task demo::echo on 2 nodes\n/);
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
    assert.match(failed.stdout, /Successful: 0\n +Failed: 2\n/);
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
    assert.deepEqual(doc.items.map((i) => (i.stdout as { message: string }).message), ['j', 'j']);
  });

  it('builds the input from typed flags, --input files and the --param- flag of a clashing name; flags override --input', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-cli-input-'));
    writeFileSync(join(dir, 'in.yaml'), 'name: from-yaml\nport: 8080\ntags: [a]\n');
    const r = await baton(
      'tasks', 'run', 'clitest::params', '--input', `@${join(dir, 'in.yaml')}`, '--name', 'from-flag', '--no-force', '--tags', 'x', '--tags', 'y',
      '--opts', '{"k":[1,2]}', '--param-timeout', '7', '--timeout', '30', '-I', 'node1', '--json',
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

  it('runs in batches, in the background; watch follows it to the end and exits as the run; status, runs and --metadata read it', async () => {
    const bg = await baton('tasks', 'run', 'runs::sleep', '--seconds', '1', '--batch', '1', '--batch-sleep', '1', '--background');
    assert.equal(bg.code, 0, show(bg));
    const taskId = HEX_ID.exec(/with task id (\S+)/.exec(bg.stdout)?.[1] ?? '')?.[0];
    assert.ok(taskId, show(bg));
    assert.match(bg.stdout, new RegExp(`Follow it with 'baton tasks watch ${taskId}'`));

    const watch = await baton('tasks', 'watch', taskId);
    assert.equal(watch.code, 0, show(watch));
    assert.match(watch.stdout, new RegExp(`Summary for task ${taskId}`));
    assert.match(watch.stdout, /Successful: 2/);

    const status = await baton('tasks', 'status', taskId, '--json');
    assert.equal(status.code, 0, show(status));
    const doc = JSON.parse(status.stdout) as StatusDocument;
    const starts = doc.items.map((i) => i.start_time).sort();
    assert.ok(starts[1] - starts[0] >= 1, `batches of one start at least a batch (1 s) apart: ${starts.join(', ')}`);

    // Filters pick the items as mco's do (by fact, class or identity), the run's counters unchanged.
    const byFact = await baton('tasks', 'status', taskId, '--json', '-F', 'role=db');
    assert.equal(byFact.code, 0, show(byFact));
    const factDoc = JSON.parse(byFact.stdout) as StatusDocument;
    assert.deepEqual(factDoc.items.map((i) => i.host), ['node2']);
    assert.equal(factDoc.summary.nodes, 2);
    const byClass = await baton('tasks', 'status', taskId, '--json', '-C', 'role::web');
    assert.deepEqual((JSON.parse(byClass.stdout) as StatusDocument).items.map((i) => i.host), ['node1'], show(byClass));

    const meta = await baton('tasks', 'status', taskId, '--metadata');
    assert.equal(meta.code, 0, show(meta));
    assert.match(meta.stdout, /^ {2}node1 +0\n {4}runs::sleep by user=\S+ at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n {4}completed: yes runtime: \d+\.\d\d stdout: (yes|no) stderr: no$/m);

    const runs = await baton('tasks', 'runs', '--task', 'runs::sleep', '--json');
    assert.equal(runs.code, 0, show(runs));
    const listed = JSON.parse(runs.stdout) as Array<{ taskid: string; task: string }>;
    assert.ok(listed.some((r) => r.taskid === taskId));
    assert.ok(listed.every((r) => r.task === 'runs::sleep'));
    const table = await baton('tasks', 'runs', '--limit', '1');
    assert.match(table.stdout, /^TASK ID +TASK +CALLER +STATE +NODES +CREATED \(UTC\)\n[0-9a-f]{32} /);
  });

  it('says how many nodes still run when the wait ends, and cancel stops them', async () => {
    const r = await baton('tasks', 'run', 'runs::sleep', '--seconds', '120', '--wait', '1');
    assert.equal(r.code, 4, show(r));
    const taskId = /Summary for task ([0-9a-f]{32})/.exec(r.stdout)?.[1];
    assert.ok(taskId, show(r));
    assert.match(r.stdout, new RegExp(`2 nodes are still running: follow them with 'baton tasks watch ${taskId}'`));

    const cancel = await baton('tasks', 'cancel', taskId);
    assert.equal(cancel.code, 0, show(cancel));
    assert.match(cancel.stdout, /^Cancel sent for task [0-9a-f]{32} to 2 nodes: node1, node2$/m);
    await waitFor(
      'the cancelled run to be final',
      async () => {
        const s = await baton('tasks', 'status', taskId, '--json');
        return (JSON.parse(s.stdout) as StatusDocument).items.every((i) => i.state === 'cancelled' || i.state === 'failed');
      },
      30_000,
      500,
    );
  });

  it('discovers nodes, and prints help for every command', async () => {
    const d = await baton('discover', '-I', '/node/');
    assert.equal(d.code, 0, show(d));
    assert.equal(d.stdout, 'node1\nnode2\n');
    for (const args of [['--help'], ['tasks', '--help'], ['tasks', 'list', '--help'], ['tasks', 'show', '--help'], ['tasks', 'run', '--help'], ['tasks', 'status', '--help'], ['tasks', 'watch', '--help'], ['tasks', 'cancel', '--help'], ['tasks', 'runs', '--help'], ['discover', '--help'], ['config', 'show', '--help'], ['completion', '--help']]) {
      const h = await runCli(args);
      assert.equal(h.code, 0, `${args.join(' ')}: ${show(h)}`);
      assert.match(h.stdout, /Usage: /, args.join(' '));
    }
    const runHelp = await baton('tasks', 'run', 'clitest::params', '--help');
    assert.match(runHelp.stdout, /--\[no-\]force|--no-force/);
    assert.match(runHelp.stdout, /--param-timeout <TIMEOUT>/);
  });

  it('completes subcommands, task names and a task\'s parameter flags; prints bash and zsh scripts', async () => {
    const top = await baton('__complete', '');
    assert.match(top.stdout, /^tasks$/m);
    const names = await baton('__complete', 'tasks', 'run', 'de');
    assert.deepEqual(names.stdout.trimEnd().split('\n'), ['clitest::params', 'demo', 'demo::echo', 'demo::fail', 'demo::uptime', 'runs::sleep']);
    const flags = await baton('__complete', 'tasks', 'run', 'clitest::params', '--');
    for (const f of ['--name', '--force', '--no-force', '--tags', '--param-timeout', '--timeout', '-I'.replace('-I', '--with-identity')]) assert.match(flags.stdout, new RegExp(`^${f}$`, 'm'));
    const bash = await baton('completion', 'bash');
    assert.match(bash.stdout, /complete -o default -F _baton baton/);
    assert.match(bash.stdout, /baton __complete/);
    const zsh = await baton('completion', 'zsh');
    assert.match(zsh.stdout, /^#compdef baton/);
    const bad = await baton('completion', 'fish');
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr, "baton: unknown shell 'fish'; expected bash or zsh\n");
  });

  it('shows each setting and where it came from: flag, BATON_* variable, config file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-cli-config-'));
    const file = join(dir, 'config.yaml');
    writeFileSync(file, `results: 127.0.0.1:1\ntls-ca: ${join(dir, 'ca.pem')}\n`);
    const r = await runCli(['config', 'show', '--scheduler', '127.0.0.1:2'], { BATON_CONFIG: file, BATON_METADATA: '127.0.0.1:3' });
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /^ {2}scheduler +127\.0\.0\.1:2 +flag --scheduler$/m);
    assert.match(r.stdout, /^ {2}metadata +127\.0\.0\.1:3 +environment variable BATON_METADATA$/m);
    assert.match(r.stdout, new RegExp(`^  results +127\\.0\\.0\\.1:1 +config file ${file.replace(/[.]/g, '\\.')}$`, 'm'));
    assert.match(r.stdout, /^ {2}tls-key +- +not set$/m);
    writeFileSync(file, 'schedular: x\n');
    const bad = await runCli(['config', 'show'], { BATON_CONFIG: file });
    assert.equal(bad.code, 2, show(bad));
    assert.match(bad.stderr, /^baton: config file .*: unknown key 'schedular'; expected one of scheduler, metadata/);
  });

  it('on a terminal draws live progress on stderr and colours, and NO_COLOR removes the colours', async () => {
    const tty = await runCliInPty(['tasks', 'run', 'demo::echo', '--message', 'pty'], fleet.env);
    assert.equal(tty.code, 0, tty.output);
    assert.match(tty.output, / \* \[ =+ \] 2 \/ 2/, 'the progress bar reaches 2 / 2');
    assert.ok(tty.output.includes(`${ESC}[2K`), 'the progress line is redrawn in place');
    assert.ok(tty.output.includes(`Successful: ${ESC}[32m2${ESC}[39m`), `green count on a terminal:\n${tty.output}`);

    const plain = await runCliInPty(['tasks', 'run', 'demo::echo', '--message', 'pty'], { ...fleet.env, NO_COLOR: '1' });
    assert.equal(plain.code, 0, plain.output);
    for (const sgr of ['[32m', '[31m', '[1m', '[39m']) assert.ok(!plain.output.includes(`${ESC}${sgr}`), `no colour with NO_COLOR:\n${plain.output}`);
    assert.match(plain.output, /Successful: 2/);
  });
});
