import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunCommand } from '../gen/baton/v1/agent_gateway_service';
import { NodeState } from '../gen/baton/v1/run';
import { InputMethod } from '../gen/baton/v1/task';
import { createLogger } from '../lib/logger';
import { newTaskId } from '../lib/task-id';
import { FileCache } from '../agent/file-cache';
import { Spool } from '../agent/spool';
import { TaskRunner } from '../agent/task-runner';
import { spawnWrapper } from '../agent/task-wrapper';

/**
 * The agent's cost per task (issue 4): from a RunCommand handed to the agent's TaskRunner to the
 * TaskFinished result it reports, for a trivial script, against a bare spawn of the same script
 * (spawn, stdout read, exit awaited) measured in the same process, interleaved run by run so
 * both see the same machine load. Goal: agent ≤ 1.5 × bare spawn.
 *
 * Why in-process: TaskRunner is everything the agent does for a run (checks, the cache
 * verification by sha256, the spool directory, request.json, laying the files out, the /bin/sh
 * wrapper in its own session, the exit status via exitcode.tmp → exitcode, reading the output,
 * result.json written and read back) with the real cache, spool and wrapper. Around it the agent
 * adds only the decoding of one RunCommand and the encoding of one TaskFinished on an open
 * stream; measuring through the scheduler would add the scheduler's and results service's work
 * and Redis, which is not the agent's cost.
 */

const WARMUP = 5;
const RUNS = 40;
const GOAL_RATIO = 1.5;
const SCRIPT = '#!/bin/sh\necho \'{"ok": true}\'\n';

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Spawns the script directly and waits for its output and exit; ms. */
function bareSpawn(path: string): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(path, [], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0 || !Buffer.concat(out).toString().includes('"ok"')) reject(new Error(`bare spawn exited ${code}`));
      else resolve(performance.now() - t0);
    });
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-agent-bench-'));
  try {
    const cacheDir = join(dir, 'cache');
    const spoolDir = join(dir, 'spool');
    mkdirSync(cacheDir);
    mkdirSync(spoolDir);
    const data = Buffer.from(SCRIPT);
    const sha256 = createHash('sha256').update(data).digest('hex');
    writeFileSync(join(cacheDir, sha256), data, { mode: 0o640 });
    const bare = join(dir, 'trivial.sh');
    writeFileSync(bare, data);
    chmodSync(bare, 0o755);

    const runner = new TaskRunner({ identity: 'bench.example.com', spool: new Spool(spoolDir), cache: new FileCache(cacheDir), log: createLogger('agent-bench', 'silent') });
    const command = (): RunCommand => ({
      taskId: newTaskId(),
      task: 'bench::trivial',
      environment: 'production',
      files: [{ path: 'bench/tasks/trivial.sh', sha256, sizeBytes: data.length }],
      executable: 'bench/tasks/trivial.sh',
      implementations: [],
      inputMethod: InputMethod.INPUT_METHOD_BOTH,
      inputJson: '{"name":"value"}',
      sensitiveParameters: [],
      caller: 'user=bench',
      runAs: '',
      timeoutS: 0,
      noop: false,
      supportsNoop: false,
    });
    const agentRun = async (): Promise<number> => {
      const t0 = performance.now();
      let sentMs = 0;
      await runner.run(command(), {
        started: () => undefined,
        finished: (r) => {
          sentMs = performance.now() - t0;
          if (r.state !== NodeState.NODE_STATE_SUCCEEDED) throw new Error(`task failed: ${r.statusmsg}`);
        },
      });
      return sentMs;
    };

    // The wrapper alone (no checks, spool files or result): how much of the cost is the extra /bin/sh.
    let wrapperRun = 0;
    const wrapperOnly = async (): Promise<number> => {
      const runDir = join(dir, `w${wrapperRun++}`);
      mkdirSync(runDir);
      const t0 = performance.now();
      const { exited } = await spawnWrapper({ dir: runDir, argv: [bare], env: { ...process.env } as Record<string, string>, stdin: '{}' });
      await exited;
      return performance.now() - t0;
    };

    for (let i = 0; i < WARMUP; i++) {
      await bareSpawn(bare);
      await wrapperOnly();
      await agentRun();
    }
    const agentMs: number[] = [];
    const bareMs: number[] = [];
    const wrapperMs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      bareMs.push(await bareSpawn(bare));
      wrapperMs.push(await wrapperOnly());
      agentMs.push(await agentRun());
    }
    const a = median(agentMs);
    const b = median(bareMs);
    const ratio = a / b;
    const ms = (v: number) => `${v.toFixed(2)} ms`;
    console.log(`agent cost per task, trivial /bin/sh script, median of ${RUNS} interleaved runs`);
    console.log('| measurement | median |');
    console.log('|---|---|');
    console.log(`| bare spawn of the script (spawn, read stdout, exit) | ${ms(b)} |`);
    console.log(`| the /bin/sh wrapper alone running the script (spawn, exit) | ${ms(median(wrapperMs))} |`);
    console.log(`| agent: RunCommand → TaskFinished (checks, sha256, spool, wrapper, result.json) | ${ms(a)} |`);
    console.log(`| ratio agent / bare spawn | ${ratio.toFixed(2)}× (goal ≤ ${GOAL_RATIO}× ${ratio <= GOAL_RATIO ? 'met' : 'MISSED'}) |`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
