import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import { packageRoot } from '../lib/package-root';
import { makeTestCertificates, type TestCertificates } from '../test/helpers/certificates';

/**
 * The agent pod's init step against a stand-in for the Kubernetes API with cert-manager: an
 * HTTPS server that takes CertificateRequests the way the API server stores them and signs each
 * request's CSR with the test CA (openssl), as cert-manager's CA Issuer does.
 */

const root = packageRoot();
const PROGRAM = join(root, 'dist', 'agent', 'request-certificate.js');
const TOKEN = 'test-service-account-token';
const NAMESPACE = 'baton';

interface Stored {
  body: { metadata: { name: string }; spec: { request: string; issuerRef: { name: string; kind: string }; usages: string[] } };
  reads: number;
}

describe('the agent certificate init step', () => {
  let certs: TestCertificates;
  let api: Server;
  let port: number;
  let saDir: string;
  /** What the stand-in answers to a read once the request is stored: issue, or deny. */
  let verdict: 'issue' | 'deny' = 'issue';
  const requests = new Map<string, Stored>();
  const deleted: string[] = [];

  before(async () => {
    certs = makeTestCertificates();
    saDir = join(certs.dir, 'serviceaccount');
    mkdirSync(saDir);
    writeFileSync(join(saDir, 'token'), `${TOKEN}\n`);
    writeFileSync(join(saDir, 'namespace'), NAMESPACE);
    writeFileSync(join(saDir, 'ca.crt'), readFileSync(certs.ca));
    const collection = `/apis/cert-manager.io/v1/namespaces/${NAMESPACE}/certificaterequests`;
    api = createServer({ cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const answer = (status: number, body: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        };
        if (req.headers.authorization !== `Bearer ${TOKEN}`) return answer(401, { message: 'Unauthorized' });
        if (req.method === 'POST' && req.url === collection) {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Stored['body'];
          requests.set(body.metadata.name, { body, reads: 0 });
          return answer(201, body);
        }
        const name = req.url?.startsWith(`${collection}/`) ? decodeURIComponent(req.url.slice(collection.length + 1)) : undefined;
        const stored = name ? requests.get(name) : undefined;
        if (!name || !stored) return answer(404, { message: 'not found' });
        if (req.method === 'DELETE') {
          deleted.push(name);
          return answer(200, {});
        }
        // The first read finds it pending, as cert-manager takes a moment.
        if (stored.reads++ === 0) return answer(200, { ...stored.body, status: {} });
        if (verdict === 'deny')
          return answer(200, { ...stored.body, status: { conditions: [{ type: 'Denied', status: 'True', reason: 'Policy', message: 'not allowed' }] } });
        const csr = join(certs.dir, `${name}.csr`);
        writeFileSync(csr, Buffer.from(stored.body.spec.request, 'base64'));
        const signed = execFileSync(
          'openssl',
          ['x509', '-req', '-in', csr, '-CA', certs.ca, '-CAkey', join(certs.dir, 'ca.key'), '-days', '1', '-set_serial', '7'],
          { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
        );
        return answer(200, { ...stored.body, status: { certificate: Buffer.from(signed).toString('base64'), ca: readFileSync(certs.ca).toString('base64') } });
      });
    });
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    port = (api.address() as { port: number }).port;
  });
  after(async () => {
    await new Promise<void>((resolve) => api.close(() => resolve()));
    rmSync(certs.dir, { recursive: true, force: true });
  });

  const run = (pod: string, out: string, env: Record<string, string> = {}) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [PROGRAM],
        {
          timeout: 60_000,
          env: {
            PATH: process.env.PATH,
            NODE_NAME: 'web01.example.net',
            POD_NAME: pod,
            KUBERNETES_SERVICE_HOST: '127.0.0.1',
            KUBERNETES_SERVICE_PORT: String(port),
            BATON_SERVICE_ACCOUNT_DIR: saDir,
            BATON_CERT_DIR: out,
            ...env,
          },
        },
        (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stdout, stderr }),
      );
    });

  it("writes the node's own certificate, key and CA, for a key that never left the pod, and removes the request", async () => {
    verdict = 'issue';
    const out = join(certs.dir, 'issued');
    const result = await run('agent-x7f2k', out);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /issued CN=web01\.example\.net by Issuer baton-ca/);
    const sent = requests.get('baton-agent-agent-x7f2k');
    assert.ok(sent, `requests made: ${[...requests.keys()].join(', ')}`);
    assert.deepEqual(sent.body.spec.issuerRef, { name: 'baton-ca', kind: 'Issuer', group: 'cert-manager.io' });
    assert.ok(sent.body.spec.usages.includes('client auth'));
    assert.doesNotMatch(Buffer.from(sent.body.spec.request, 'base64').toString(), /PRIVATE KEY/, 'only the CSR is sent');
    const cert = new X509Certificate(readFileSync(join(out, 'tls.crt')));
    assert.equal(cert.subject, 'CN=web01.example.net\nOU=baton-agent');
    assert.ok(cert.checkPrivateKey(createPrivateKey(readFileSync(join(out, 'tls.key')))));
    assert.ok(cert.verify(new X509Certificate(readFileSync(join(out, 'ca.crt'))).publicKey), 'signed by the CA it wrote');
    assert.equal(statSync(join(out, 'tls.key')).mode & 0o777, 0o600);
    assert.ok(deleted.includes('baton-agent-agent-x7f2k'), 'the request is deleted once read');
  });

  it('exits 1 with one line and writes nothing when the request is denied', async () => {
    verdict = 'deny';
    const out = join(certs.dir, 'denied');
    const result = await run('agent-d3n1d', out);
    assert.equal(result.code, 1);
    assert.equal(result.stderr, 'baton-agent-certificate: CertificateRequest baton-agent-agent-d3n1d denied: not allowed\n');
    assert.ok(!existsSync(join(out, 'tls.key')));
    assert.ok(deleted.includes('baton-agent-agent-d3n1d'));
  });

  it('exits 2 naming the variable when the pod spec does not give the node name', async () => {
    const result = await run('agent-x', join(certs.dir, 'none'), { NODE_NAME: '' });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^baton-agent-certificate: NODE_NAME is not set/);
  });
});
