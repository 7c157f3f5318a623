import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { credentials, status } from '@grpc/grpc-js';
import { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { NodeState, RunState } from '../../gen/baton/v1/run';
import { startChild, type StartedChild } from '../../lib/child-process';
import { makeClient, unary } from '../../lib/grpc-client';
import { LISTENING_LINE } from '../../lib/main';
import { startRedisServer } from '../../lib/redis-server';
import { useRedisServer, uniquePrefix } from '../../test/helpers/redis';
import { finished, grpcError, newRun, nodeResult } from '../../test/helpers/results-service';
import { expectScriptsLoadedAtStart } from '../../test/helpers/lua-scripts';

const redisServer = useRedisServer();
const MAIN = join(__dirname, 'main.js');

/** Starts the compiled baton-results as a real process and returns it with its address. */
async function startResults(redisUrl: string, prefix: string): Promise<{ proc: StartedChild; address: string }> {
  const proc = await startChild(
    process.execPath,
    [MAIN, '--insecure', '--listen', '127.0.0.1:0', '--redis-url', redisUrl, '--key-prefix', prefix, '--log-level', 'warn'],
    {
      ready: LISTENING_LINE,
    },
  );
  const address = LISTENING_LINE.exec(proc.readyLine)![1];
  return { proc, address };
}

describe('baton-results process', () => {
  const started: StartedChild[] = [];
  after(async () => {
    await Promise.all(started.map((p) => p.stop()));
  });

  it('keeps runs and results across a restart against the same Redis', async () => {
    const prefix = uniquePrefix();
    const first = await startResults(redisServer.url, prefix);
    started.push(first.proc);
    assert.match(first.proc.readyLine, /^baton-results listening on 127\.0\.0\.1:\d+$/);
    const client1 = makeClient(ResultsServiceClient, first.address);
    const run = (await unary(client1, client1.createRun, { run: newRun(['a', 'b']) })).run!;
    await unary(client1, client1.updateRunState, { taskId: run.taskId, state: RunState.RUN_STATE_RUNNING, reason: '' });
    await unary(client1, client1.recordNodeResults, { taskId: run.taskId, results: [finished('a', 0, 1.5), nodeResult('b', { runtime: 1 })] });
    const before = await unary(client1, client1.getRunStatus, { taskId: run.taskId });
    client1.close();

    await first.proc.stop();
    assert.equal(first.proc.child.exitCode, 0, 'SIGTERM drains and exits 0');

    const second = await startResults(redisServer.url, prefix);
    started.push(second.proc);
    const client2 = makeClient(ResultsServiceClient, second.address);
    const afterRestart = await unary(client2, client2.getRunStatus, { taskId: run.taskId });
    assert.deepEqual(afterRestart, before);
    assert.deepEqual(
      afterRestart.items.map((r) => r.state),
      [NodeState.NODE_STATE_SUCCEEDED, NodeState.NODE_STATE_RUNNING],
    );
    // The new process carries on where the old one stopped: the last result finalises the run.
    await unary(client2, client2.recordNodeResults, { taskId: run.taskId, results: [finished('b', 0, 2)] });
    assert.equal((await unary(client2, client2.getRunStatus, { taskId: run.taskId })).run?.state, RunState.RUN_STATE_SUCCEEDED);
    client2.close();
  });

  it('loads every one of its Redis scripts when it starts, before any request uses one', async () => {
    await expectScriptsLoadedAtStart(__dirname, 9, async (redisUrl) => (await startResults(redisUrl, uniquePrefix())).proc);
  });

  it('answers UNAVAILABLE with a one-line message while Redis is down', async () => {
    const redis = await startRedisServer();
    const results = await startResults(redis.url, uniquePrefix());
    started.push(results.proc);
    // No client retries here: the point is what one call answers.
    const client = new ResultsServiceClient(results.address, credentials.createInsecure(), { 'grpc.enable_retries': 0 });
    const run = (await unary(client, client.createRun, { run: newRun(['a']) })).run!;
    await redis.stop();
    const err = await grpcError(unary(client, client.getRunStatus, { taskId: run.taskId }));
    assert.equal(err.code, status.UNAVAILABLE);
    assert.match(err.details, /^redis is unavailable/);
    assert.doesNotMatch(err.details, /\n/);
    client.close();
  });

  it('refuses a negative or fractional run-retention-s, or a zero sweep interval, with one line naming the key', () => {
    const cases: Array<[string, RegExp]> = [
      ['--run-retention-s=-1', /^baton-results: configuration: run-retention-s must be >= 0 \(.*\) \[from flag --run-retention-s\]$/],
      ['--run-retention-s=1.5', /^baton-results: configuration: run-retention-s must be integer \(.*\) \[from flag --run-retention-s\]$/],
      [
        '--retention-sweep-interval-s=0',
        /^baton-results: configuration: retention-sweep-interval-s must be >= 1 \(.*\) \[from flag --retention-sweep-interval-s\]$/,
      ],
    ];
    for (const [arg, line] of cases) {
      const res = spawnSync(process.execPath, [MAIN, '--listen', '127.0.0.1:0', arg], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(res.status, 2, `${arg}: exit code 2 for a configuration problem`);
      assert.match(res.stderr.trim(), line);
    }
  });

  it('refuses to start without certificates unless insecure, in one line pointing to baton pki', () => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BATON_')));
    const res = spawnSync(process.execPath, [MAIN, '--listen', '127.0.0.1:0'], { env, encoding: 'utf8', timeout: 30_000 });
    assert.equal(res.status, 2, res.stderr);
    assert.equal(
      res.stderr,
      'baton-results: configuration: missing tls-cert, tls-key, tls-ca; TLS needs tls-cert, tls-key and tls-ca (make them with `baton pki init` and `baton pki issue`), or set insecure: true (--insecure, BATON_INSECURE=true) for plaintext local development\n',
    );
    assert.equal(res.stdout, '');
  });
});
