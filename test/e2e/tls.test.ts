import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../lib/package-root';
import { createCa, issueCertificate } from '../../lib/pki';
import { runCli, runInstalledCli, type CliRun } from '../helpers/cli';
import { useDevStack } from '../helpers/dev-stack';
import { waitFor } from '../helpers/wait';

const show = (r: CliRun) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

describe('a stack with mutual TLS (DevStack tls: true)', () => {
  const fleet = useDevStack({ agents: 2, tls: true });
  let foreign: string;
  before(() => {
    foreign = mkdtempSync(join(tmpdir(), 'baton-foreign-pki-'));
    createCa(foreign);
    issueCertificate(foreign, 'operator', 'mallory');
    issueCertificate(foreign, 'agent', 'node9');
  });
  after(() => rmSync(foreign, { recursive: true, force: true }));

  /** The stack's addresses without any TLS settings. */
  const addressesOnly = () => ({
    BATON_SCHEDULER: fleet.env.BATON_SCHEDULER,
    BATON_METADATA: fleet.env.BATON_METADATA,
    BATON_RESULTS: fleet.env.BATON_RESULTS,
  });

  it('runs demo::echo end to end through the CLI with an operator certificate', async () => {
    const r = await runCli(['tasks', 'run', 'demo::echo', '--message', 'over tls', '-I', 'node1', '-I', 'node2'], fleet.env);
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /Caller: cert=alice\n/);
    assert.match(r.stdout, /Successful: 2\n/);
  });

  it('tells a plaintext CLI in one line that the service requires TLS', async () => {
    const r = await runCli(['discover'], addressesOnly());
    assert.equal(r.code, 69, show(r));
    assert.equal(
      r.stderr,
      `baton: the scheduler at ${fleet.stack.addresses.scheduler} requires TLS; give --tls-ca, --tls-cert and --tls-key (or BATON_TLS_CA, BATON_TLS_CERT, BATON_TLS_KEY; see \`baton pki\`)\n`,
    );
  });

  it('tells a CLI whose certificate another CA signed that the service refused it', async () => {
    const cert = join(foreign, 'operator-mallory.pem');
    const r = await runCli(['discover', '--tls-cert', cert, '--tls-key', join(foreign, 'operator-mallory.key')], {
      ...addressesOnly(),
      BATON_TLS_CA: fleet.stack.tls!.ca,
    });
    assert.equal(r.code, 69, show(r));
    assert.match(
      r.stderr,
      new RegExp(
        `^baton: the scheduler at ${fleet.stack.addresses.scheduler} refused our certificate, tls-cert ${cert} \\(from flag --tls-cert\\): it is not signed by the CA the services trust`,
      ),
    );
    assert.equal(r.stderr.split('\n').length, 2, 'one line');
  });

  it('tells a CLI trusting another CA that it does not trust the service', async () => {
    const alice = fleet.stack.tls!.operator('alice');
    const r = await runCli(['tasks', 'status', '0'.repeat(32)], {
      ...addressesOnly(),
      BATON_TLS_CA: join(foreign, 'ca.pem'),
      BATON_TLS_CERT: alice.cert,
      BATON_TLS_KEY: alice.key,
    });
    assert.equal(r.code, 69, show(r));
    assert.match(
      r.stderr,
      new RegExp(
        `^baton: the results service at ${fleet.stack.addresses.results} has a certificate that tls-ca ${join(foreign, 'ca.pem')} \\(from environment variable BATON_TLS_CA\\) does not trust \\(self-signed certificate in certificate chain\\)`,
      ),
    );
  });

  it('trusts the NODE_EXTRA_CA_CERTS file without a tls-ca, as installed, where Node does not read it as the CLI starts', async () => {
    const alice = fleet.stack.tls!.operator('alice');
    const operator = { ...addressesOnly(), BATON_TLS_CERT: alice.cert, BATON_TLS_KEY: alice.key };
    const trusted = await runInstalledCli(['discover'], { ...operator, NODE_EXTRA_CA_CERTS: fleet.stack.tls!.ca });
    assert.equal(trusted.code, 0, show(trusted));
    assert.match(trusted.stdout, /node1/);
    // Without the file, Node's roots alone: the same command is refused, so the file was what made the difference.
    const untrusted = await runInstalledCli(['discover'], operator);
    assert.equal(untrusted.code, 69, show(untrusted));
    assert.match(untrusted.stderr, /does not trust/);
  });

  it('keeps out an agent whose certificate and CA are another PKI, and its log says why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-foreign-agent-'));
    const agent = spawn(
      process.execPath,
      [
        join(packageRoot(), 'dist', 'agent', 'main.js'),
        '--identity',
        'node9',
        '--scheduler-address',
        fleet.stack.addresses.scheduler,
        '--cache-dir',
        join(dir, 'cache'),
        '--spool-dir',
        join(dir, 'spool'),
        '--tls-cert',
        join(foreign, 'agent-node9.pem'),
        '--tls-key',
        join(foreign, 'agent-node9.key'),
        '--tls-ca',
        join(foreign, 'ca.pem'),
        '--log-level',
        'info',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    agent.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    agent.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      await waitFor('the agent to log why it cannot connect', () => /self-signed certificate in certificate chain/.test(stderr), 30_000);
      assert.doesNotMatch(stdout, /connected to/);
      const r = await runCli(['discover', '-I', 'node9', '--offline'], fleet.env);
      assert.doesNotMatch(r.stdout, /node9/, show(r));
    } finally {
      agent.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
