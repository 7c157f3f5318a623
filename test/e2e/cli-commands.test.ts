import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StatusDocument } from '../../cli/status-document';
import { runCli, type CliRun } from '../helpers/cli';
import { cliEnvironmentpath } from '../helpers/cli-environment';
import { useDevStack } from '../helpers/dev-stack';
import { runCliInPty } from '../helpers/pty';
import { waitFor } from '../helpers/wait';

const HEX_ID = /[0-9a-f]{32}/;
const ESC = '\x1b';

describe('the baton CLI: background runs, watch, cancel, discover, help, completion, config, terminals', () => {
  const fleet = useDevStack({ agents: 2, environmentpath: cliEnvironmentpath() });
  const baton = (...args: string[]): Promise<CliRun> => runCli(args, fleet.env);
  const show = (r: CliRun) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

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
    assert.deepEqual(
      factDoc.items.map((i) => i.host),
      ['node2'],
    );
    assert.equal(factDoc.summary.nodes, 2);
    const byClass = await baton('tasks', 'status', taskId, '--json', '-C', 'role::web');
    assert.deepEqual(
      (JSON.parse(byClass.stdout) as StatusDocument).items.map((i) => i.host),
      ['node1'],
      show(byClass),
    );

    const meta = await baton('tasks', 'status', taskId, '--metadata');
    assert.equal(meta.code, 0, show(meta));
    assert.match(
      meta.stdout,
      /^ {2}node1 +0\n {4}runs::sleep by user=\S+ at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n {4}completed: yes runtime: \d+\.\d\d stdout: (yes|no) stderr: no$/m,
    );

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

  it("discovers nodes, and lists a task's flags in its run help", async () => {
    const d = await baton('discover', '-I', '/node/');
    assert.equal(d.code, 0, show(d));
    assert.equal(d.stdout, 'node1\nnode2\n');
    const runHelp = await baton('tasks', 'run', 'clitest::params', '--help');
    assert.match(runHelp.stdout, /--\[no-\]force|--no-force/);
    assert.match(runHelp.stdout, /--param-timeout <TIMEOUT>/);
  });

  it("completes subcommands, task names and a task's parameter flags; prints bash and zsh scripts", async () => {
    const top = await baton('__complete', '');
    assert.match(top.stdout, /^tasks$/m);
    const names = await baton('__complete', 'tasks', 'run', 'de');
    assert.deepEqual(names.stdout.trimEnd().split('\n'), [
      'clitest::big',
      'clitest::params',
      'clitest::typed',
      'demo',
      'demo::echo',
      'demo::fail',
      'demo::uptime',
      'runs::sleep',
    ]);
    const flags = await baton('__complete', 'tasks', 'run', 'clitest::params', '--');
    for (const f of ['--name', '--force', '--no-force', '--tags', '--param-timeout', '--timeout', '-I'.replace('-I', '--with-identity')])
      assert.match(flags.stdout, new RegExp(`^${f}$`, 'm'));
    const bash = await baton('completion', 'bash');
    assert.match(bash.stdout, /complete -o default -F _baton baton/);
    assert.match(bash.stdout, /bin\/baton" __complete/);
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
