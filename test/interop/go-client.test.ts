import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../lib/package-root';
import { useDevStack } from '../helpers/dev-stack';

/**
 * A Go client, its stubs generated out of proto/ at test time with Debian's protoc,
 * protoc-gen-go and protoc-gen-go-grpc and built offline by Debian's Go in GOPATH mode against
 * the modules Debian installs under /usr/share/gocode (grpc-go, the protobuf runtime, genproto),
 * talks mutual TLS to a real stack as operator alice: lists tasks, runs demo::echo, reads the
 * BadRequest of a bad input, watches the run's event log and reads its status.
 */

/** Debian's Go (golang-go); without it the test is skipped, saying so. */
const GO = '/usr/bin/go';
const PROTOC = '/usr/bin/protoc';
const PROTOC_INCLUDE = '/usr/include';
const PROTOC_GEN_GO = '/usr/bin/protoc-gen-go';
const PROTOC_GEN_GO_GRPC = '/usr/bin/protoc-gen-go-grpc';
/** Where Debian's golang-*-dev packages put their sources, a GOPATH entry. */
const DEBIAN_GOPATH = '/usr/share/gocode';
/** Debian source directories the client imports, with the package that installs each. */
const DEBIAN_GO_SOURCES: Record<string, string> = {
  'google.golang.org/grpc': 'golang-google-grpc-dev',
  'google.golang.org/protobuf': 'golang-google-protobuf-dev',
  'google.golang.org/genproto/googleapis/rpc/errdetails': 'golang-google-genproto-dev',
};
/** A cold build of grpc-go on a busy machine takes more than a minute. */
const BUILD_TIMEOUT_MS = 300_000;
/** Most time one client run may take (it waits for a real run on real agents). */
const CLIENT_TIMEOUT_MS = 90_000;
/** The import path the proto files' go_package names. */
const GO_PACKAGE_DIR = 'github.com/baton-tasks/baton/gen/go/baton/v1';

const root = packageRoot();

interface Exit {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program without a shell and resolves with how it exited (never rejects on a non-zero exit). */
function run(file: string, args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<Exit> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: root, timeout: timeoutMs, env }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('a Go client generated from proto/', { skip: existsSync(GO) ? false : `${GO} is missing (Debian: golang-go)` }, () => {
  const dev = useDevStack({ agents: 2, tls: true });
  let work: string;
  let binary: string;

  before(
    async () => {
      const missing = [PROTOC, PROTOC_GEN_GO, PROTOC_GEN_GO_GRPC].filter((f) => !existsSync(f));
      for (const [dir, pkg] of Object.entries(DEBIAN_GO_SOURCES))
        if (!existsSync(join(DEBIAN_GOPATH, 'src', dir))) missing.push(`${DEBIAN_GOPATH}/src/${dir} (${pkg})`);
      if (missing.length) throw new Error(`missing ${missing.join(', ')}; run scripts/install-deps.sh`);
      work = mkdtempSync(join(tmpdir(), 'baton-go-client-'));
      const src = join(work, 'src');
      const protos = readdirSync(join(root, 'proto', 'baton', 'v1'))
        .filter((f) => f.endsWith('.proto'))
        .map((f) => join('proto', 'baton', 'v1', f));
      mkdirSync(src);
      // Without paths=source_relative the files land under their go_package path inside src/,
      // which is where a GOPATH build looks for that import.
      const generated = await run(
        PROTOC,
        [
          '-Iproto',
          `-I${PROTOC_INCLUDE}`,
          `--plugin=protoc-gen-go=${PROTOC_GEN_GO}`,
          `--plugin=protoc-gen-go-grpc=${PROTOC_GEN_GO_GRPC}`,
          `--go_out=${src}`,
          `--go-grpc_out=${src}`,
          ...protos,
        ],
        CLIENT_TIMEOUT_MS,
      );
      assert.equal(generated.code, 0, `protoc failed: ${generated.stderr}`);
      assert.ok(existsSync(join(src, GO_PACKAGE_DIR, 'scheduler_service_grpc.pb.go')), 'protoc wrote no Go stubs where go_package says');
      mkdirSync(join(src, 'batonclient'));
      copyFileSync(join(root, 'test', 'interop', 'go-client', 'main.go'), join(src, 'batonclient', 'main.go'));
      binary = join(work, 'go-client');
      // GOPATH mode, no network: every import resolves in the temp tree or in Debian's sources.
      const env = { ...process.env, GOPATH: `${work}:${DEBIAN_GOPATH}`, GO111MODULE: 'off', GOFLAGS: '', GOPROXY: 'off', CGO_ENABLED: '0' };
      const built = await run('nice', ['-n', '10', GO, 'build', '-o', binary, 'batonclient'], BUILD_TIMEOUT_MS, env);
      assert.equal(built.code, 0, `go build failed: ${built.stderr}`);
    },
    { timeout: BUILD_TIMEOUT_MS + CLIENT_TIMEOUT_MS },
  );
  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const client = (nodes: string[]) => {
    const { tls, addresses: a } = dev.stack;
    assert.ok(tls, 'the stack was started without TLS');
    const alice = tls.operator('alice');
    return run(
      binary,
      [
        '--ca',
        tls.ca,
        '--cert',
        alice.cert,
        '--key',
        alice.key,
        '--metadata',
        a.metadata,
        '--scheduler',
        a.scheduler,
        '--results',
        a.results,
        ...nodes.flatMap((n) => ['--node', n]),
      ],
      CLIENT_TIMEOUT_MS,
    );
  };

  it('lists tasks, runs demo::echo as alice, reads the BadRequest of a bad input, follows the events and reads the status', async () => {
    const out = await client(dev.stack.agentNames);
    assert.equal(out.code, 0, `go client exited ${out.code}: ${out.stderr}`);
    const report = JSON.parse(out.stdout.trim().split('\n').pop()!) as {
      task_id: string;
      caller: string;
      run_states: string[];
      nodes: Record<string, string>;
      events: number;
      success: boolean;
    };
    assert.match(report.task_id, /^[0-9a-f]{32}$/);
    assert.equal(report.caller, 'cert=alice');
    assert.equal(report.run_states[0], 'RUN_STATE_PENDING');
    assert.equal(report.run_states.at(-1), 'RUN_STATE_SUCCEEDED');
    assert.deepEqual(report.nodes, Object.fromEntries(dev.stack.agentNames.map((n) => [n, 'NODE_STATE_SUCCEEDED'])));
    assert.ok(report.events >= 1 + dev.stack.agentNames.length, `only ${report.events} events`);
    assert.equal(report.success, true);
  });

  it('exits 1 with one mismatch line when the stack answers otherwise', async () => {
    const out = await client(['no-such-node']);
    assert.equal(out.code, 1, out.stderr);
    assert.match(out.stderr, /^mismatch: /m);
    assert.doesNotMatch(out.stderr, /panic|goroutine/);
  });
});
