import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { StatusDocument } from '../../cli/status-document';
import { runCli, runCliPipeline as pipeline, type CliRun } from '../helpers/cli';
import { cliEnvironmentpath } from '../helpers/cli-environment';
import { useDevStack } from '../helpers/dev-stack';

describe('baton output in pipes', () => {
  const fleet = useDevStack({ agents: 2, environmentpath: cliEnvironmentpath() });
  const show = (r: CliRun) => `exit ${r.code}\n--- stdout\n${r.stdout.slice(0, 2000)}\n--- stderr\n${r.stderr}`;
  let taskId = '';
  let bytes = 0;

  it('writes a document of more than 1 MB whole into a pipe, also for a reader that starts late and reads slowly', async () => {
    const run = await runCli(['tasks', 'run', 'clitest::big', '--kib', '600', '--json'], fleet.env);
    assert.equal(run.code, 0, show(run));
    const doc = JSON.parse(run.stdout) as StatusDocument;
    taskId = doc.summary.taskid;
    const status = await runCli(['tasks', 'status', taskId, '--json'], fleet.env);
    bytes = Buffer.byteLength(status.stdout);
    assert.ok(bytes > 1_000_000, `the document is over 1 MB: ${bytes}`);

    const counted = await pipeline(`$BATON tasks status ${taskId} --json | wc -c`, fleet.env);
    assert.equal(counted.code, 0, show(counted));
    assert.equal(Number(counted.stdout.trim()), bytes);

    // A reader that sleeps before reading and then takes 16 KiB blocks with pauses between them.
    const reader = 'sleep 1; n=0; while IFS= read -r -N 16384 c || [ -n "$c" ]; do n=$((n + ${#c})); c=; sleep 0.01; done; echo $n';
    const slow = await pipeline(`$BATON tasks status ${taskId} --json | (export LC_ALL=C; ${reader})`, fleet.env);
    assert.equal(slow.code, 0, show(slow));
    assert.equal(Number(slow.stdout.trim()), bytes);

    const parsed = await pipeline(
      `$BATON tasks status ${taskId} --json | (sleep 1; cat) | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).items.length))'`,
      fleet.env,
    );
    assert.equal(parsed.stdout.trim(), '2', show(parsed));
  });

  it('keeps the summary of -v output in a pipe', async () => {
    const r = await pipeline(`$BATON tasks status ${taskId} -v | (sleep 1; cat) | tail -n 3`, fleet.env);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /Average Run Time: \d+\.\d\ds\n$/);
  });

  it('exits quietly when the reader goes away (EPIPE): no error, no stack', async () => {
    const r = await pipeline(`$BATON tasks status ${taskId} --json | head -c 100 > /dev/null; echo "baton exited \${PIPESTATUS[0]}"`, fleet.env);
    assert.match(r.stdout, /^baton exited 0$/m, show(r));
    assert.equal(r.stderr, '', 'nothing on stderr');
    const list = await pipeline(`$BATON tasks status ${taskId} -v | head -n 1; echo "baton exited \${PIPESTATUS[0]}"`, fleet.env);
    assert.match(list.stdout, /^baton exited 0$/m, show(list));
    assert.equal(list.stderr, '');
  });
});
