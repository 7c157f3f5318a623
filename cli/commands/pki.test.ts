import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../test/helpers/cli';

describe('baton pki', () => {
  let base: string;
  let dir: string;
  before(() => {
    base = mkdtempSync(join(tmpdir(), 'baton-pki-cli-'));
    dir = join(base, 'pki');
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  it('init creates a CA and says what to issue next; a second init refuses in one line', async () => {
    const first = await runCli(['pki', 'init', '--dir', dir]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`^Created a CA in ${dir}:\\n  ${dir}/ca.pem `));
    assert.match(first.stdout, /baton pki issue service scheduler --dir /);
    assert.equal(statSync(join(dir, 'ca.key')).mode & 0o777, 0o600);
    const again = await runCli(['pki', 'init', '--dir', dir]);
    assert.equal(again.code, 2);
    assert.equal(again.stderr, `baton: a CA already exists in ${dir} (${dir}/ca.pem); refusing to overwrite it\n`);
  });

  it('issue writes a service certificate with extra SANs and prints the configuration lines that use it', async () => {
    const r = await runCli(['pki', 'issue', 'service', 'scheduler', '--dir', dir, '--san', 'DNS:sched.example.com', '--san', 'IP:10.1.2.3', '--days', '30']);
    assert.equal(r.code, 0, r.stderr);
    const cert = join(dir, 'service-scheduler.pem');
    assert.match(r.stdout, /^Issued the service certificate scheduler \(CN=scheduler, OU=baton-service\), valid 30 days:/);
    assert.ok(r.stdout.includes(`  tls-cert: ${cert}\n  tls-key: ${join(dir, 'service-scheduler.key')}\n  tls-ca: ${join(dir, 'ca.pem')}\n`), r.stdout);
    const x509 = new X509Certificate(readFileSync(cert));
    assert.equal(x509.subjectAltName, 'DNS:scheduler, DNS:localhost, IP Address:127.0.0.1, DNS:sched.example.com, IP Address:10.1.2.3');
  });

  it('issue operator prints the CLI settings as config lines and BATON_TLS_* variables', async () => {
    const r = await runCli(['pki', 'issue', 'operator', 'alice', '--dir', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(
      r.stdout.includes(
        `export BATON_TLS_CA=${join(dir, 'ca.pem')} BATON_TLS_CERT=${join(dir, 'operator-alice.pem')} BATON_TLS_KEY=${join(dir, 'operator-alice.key')}`,
      ),
      r.stdout,
    );
    assert.match(new X509Certificate(readFileSync(join(dir, 'operator-alice.pem'))).subject, /OU=baton-operator/);
  });

  it('refuses a missing CA, a bad name, an unknown role and a SAN on an agent, each in one line with exit 2', async () => {
    const empty = join(base, 'empty');
    const cases: Array<[string[], string]> = [
      [['pki', 'issue', 'agent', 'node1', '--dir', empty], `baton: no CA in ${empty}; run \`baton pki init --dir ${empty}\` first\n`],
      [
        ['pki', 'issue', 'agent', '../node1', '--dir', dir],
        "baton: invalid certificate name \"../node1\"; expected letters, digits, '.', '_' or '-', starting with a letter or digit, at most 253 characters\n",
      ],
      [
        ['pki', 'issue', 'root', 'x', '--dir', dir],
        "baton: command-argument value 'root' is invalid for argument 'role'. Allowed choices are agent, service, operator.\n",
      ],
      [
        ['pki', 'issue', 'agent', 'node1', '--dir', dir, '--san', 'DNS:x'],
        'baton: --san is for service certificates; agent certificates are checked by name, not address\n',
      ],
    ];
    for (const [args, line] of cases) {
      const r = await runCli(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.equal(r.stderr, line);
    }
    assert.equal(existsSync(join(dir, 'agent-..')), false);
  });

  it('makes a CA and certificates with no openssl on PATH', async () => {
    const bare = join(base, 'no-openssl');
    const env = { PATH: '/nonexistent' };
    const init = await runCli(['pki', 'init', '--dir', bare], env);
    assert.equal(init.code, 0, init.stderr);
    const issue = await runCli(['pki', 'issue', 'agent', 'node7', '--dir', bare], env);
    assert.equal(issue.code, 0, issue.stderr);
    const cert = new X509Certificate(readFileSync(join(bare, 'agent-node7.pem')));
    assert.equal(cert.verify(new X509Certificate(readFileSync(join(bare, 'ca.pem'))).publicKey), true);
  });

  it('says in one line that a damaged CA cannot be read, and issues nothing', async () => {
    const damaged = join(base, 'damaged');
    assert.equal((await runCli(['pki', 'init', '--dir', damaged])).code, 0);
    writeFileSync(join(damaged, 'ca.pem'), 'not a certificate\n');
    const r = await runCli(['pki', 'issue', 'agent', 'node8', '--dir', damaged]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^baton: cannot read the CA in ${damaged}: [^\\n]+\\n$`));
    assert.equal(existsSync(join(damaged, 'agent-node8.pem')), false);
  });
});
