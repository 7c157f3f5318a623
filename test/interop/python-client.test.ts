import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../lib/package-root';
import { useDevStack } from '../helpers/dev-stack';

/**
 * A Python client, from stubs generated out of proto/ at test time with Debian's
 * protoc and grpc_python_plugin and run by Debian's python3 (python3-grpcio, python3-protobuf),
 * talks to a real stack: lists tasks, runs demo::echo, watches its event log, reads its status.
 * docs/toolchain.md "Python client": the `python3` first on PATH may be a pyenv build without these
 * packages, so the Debian interpreter is named by path; grpcio-tools from PyPI is neither needed
 * nor reachable.
 */

/** Debian's interpreter, the one that sees python3-grpcio and python3-protobuf. */
const DEBIAN_PYTHON = '/usr/bin/python3';
/** protoc from protobuf-compiler; its include dir holds the well-known types. */
const PROTOC = '/usr/bin/protoc';
const PROTOC_INCLUDE = '/usr/include';
/** The grpc Python plugin from protobuf-compiler-grpc. */
const GRPC_PYTHON_PLUGIN = '/usr/bin/grpc_python_plugin';
/** Most time one python run may take, in ms (it waits for a real run on real agents). */
const PYTHON_TIMEOUT_MS = 90_000;

const root = packageRoot();

interface Exit {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program without a shell and resolves with how it exited (never rejects on a non-zero exit). */
function run(file: string, args: string[], timeoutMs = PYTHON_TIMEOUT_MS): Promise<Exit> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: root, timeout: timeoutMs, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('a Python client generated from proto/', () => {
  const dev = useDevStack({ agents: 2 });
  let stubs: string;

  before(async () => {
    const missing = [DEBIAN_PYTHON, PROTOC, GRPC_PYTHON_PLUGIN].filter((f) => !existsSync(f));
    if (missing.length)
      throw new Error(
        `missing ${missing.join(', ')}; run scripts/install-deps.sh (Debian: python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc)`,
      );
    stubs = mkdtempSync(join(tmpdir(), 'baton-py-stubs-'));
    const protos = readdirSync(join(root, 'proto', 'baton', 'v1'))
      .filter((f) => f.endsWith('.proto'))
      .map((f) => join('proto', 'baton', 'v1', f));
    const generated = await run(PROTOC, [
      '-Iproto',
      `-I${PROTOC_INCLUDE}`,
      `--python_out=${stubs}`,
      `--grpc_python_out=${stubs}`,
      `--plugin=protoc-gen-grpc_python=${GRPC_PYTHON_PLUGIN}`,
      ...protos,
    ]);
    assert.equal(generated.code, 0, `protoc failed: ${generated.stderr}`);
  });
  after(() => {
    if (stubs) rmSync(stubs, { recursive: true, force: true });
  });

  const client = (nodes: string[]) =>
    run(DEBIAN_PYTHON, [
      join(root, 'test', 'interop', 'python_client.py'),
      '--stubs',
      stubs,
      '--metadata',
      dev.stack.addresses.metadata,
      '--scheduler',
      dev.stack.addresses.scheduler,
      '--results',
      dev.stack.addresses.results,
      ...nodes.flatMap((n) => ['--node', n]),
    ]);

  it('lists tasks, runs demo::echo, follows its events from the start and reads its status', async () => {
    const out = await client(dev.stack.agentNames);
    assert.equal(out.code, 0, `python client exited ${out.code}: ${out.stderr}`);
    const report = JSON.parse(out.stdout.trim().split('\n').pop()!) as {
      task_id: string;
      run_states: string[];
      nodes: Record<string, string>;
      events: number;
      success: boolean;
    };
    assert.match(report.task_id, /^[0-9a-f]{32}$/);
    // From the start: the log is read from its first event, the run's creation.
    assert.equal(report.run_states[0], 'RUN_STATE_PENDING');
    assert.equal(report.run_states.at(-1), 'RUN_STATE_SUCCEEDED');
    assert.deepEqual(report.nodes, Object.fromEntries(dev.stack.agentNames.map((n) => [n, 'NODE_STATE_SUCCEEDED'])));
    assert.ok(report.events >= 1 + dev.stack.agentNames.length, `only ${report.events} events`);
    assert.equal(report.success, true);
  });

  it('exits 1 with one mismatch line, no traceback, when the stack answers otherwise', async () => {
    const out = await client(['no-such-node']);
    assert.equal(out.code, 1, out.stderr);
    assert.match(out.stderr, /^mismatch: /m);
    assert.doesNotMatch(out.stderr, /Traceback/);
  });
});
