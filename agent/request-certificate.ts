import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError } from '../lib/config';
import { runMain } from '../lib/main';
import { IDENTITY_PATTERN } from '../lib/names';
import { createSigningRequest } from '../lib/pki';

/**
 * The agent pod's init step on Kubernetes: a certificate for this node only, issued at pod start.
 * It makes a key in the pod, asks cert-manager for a certificate with subject
 * `CN=<node name>, OU=baton-agent` by creating a CertificateRequest (the pod's service account
 * may create them; the key never leaves the pod), waits for it, and writes `tls.crt`, `tls.key`
 * and `ca.crt` into a memory volume shared with the agent container. cert-manager's CSI driver
 * cannot do this: its volume attributes know the pod's name, namespace, UID and service account,
 * not the node's name, and an agent's identity is its node name.
 *
 * Environment: NODE_NAME (spec.nodeName), POD_NAME (metadata.name, names the request),
 * BATON_CERT_ISSUER (a cert-manager Issuer in the pod's namespace; default baton-ca),
 * BATON_CERT_DIR (default /etc/baton/agent-tls), BATON_CERT_DURATION (default 8760h),
 * KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT (set by Kubernetes), and the service
 * account's token, ca.crt and namespace in BATON_SERVICE_ACCOUNT_DIR (default the standard path).
 */

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** How long cert-manager gets to issue, and how often it is asked. */
const ISSUE_TIMEOUT_MS = 120_000;
const POLL_MS = 1_000;
/** DNS-1123 subdomain: what a Kubernetes object name must be. */
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

interface Api {
  host: string;
  port: number;
  ca: string;
  token: string;
  namespace: string;
}

interface CertificateRequestStatus {
  certificate?: string;
  ca?: string;
  conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new ConfigError(`${name} is not set; expected it from the pod spec (the downward API)`);
  return value;
}

/** One call to the Kubernetes API; resolves with the status code and the parsed JSON body. */
function call(api: Api, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: api.host,
        port: api.port,
        method,
        path,
        ca: api.ca,
        headers: { authorization: `Bearer ${api.token}`, accept: 'application/json', ...(payload ? { 'content-type': 'application/json' } : {}) },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: Record<string, unknown> = {};
          try {
            parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
          } catch {
            parsed = { message: text.slice(0, 200) };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer from the Kubernetes API in 30 s`)));
    req.on('error', reject);
    req.end(payload);
  });
}

function failure(what: string, answer: { status: number; body: Record<string, unknown> }): Error {
  return new Error(`${what}: HTTP ${answer.status} ${typeof answer.body.message === 'string' ? answer.body.message : ''}`.trim());
}

function writeAtomically(path: string, content: string, mode: number): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, content, { mode });
  renameSync(tmp, path);
}

runMain('agent-certificate', async () => {
  const node = required('NODE_NAME');
  if (!IDENTITY_PATTERN.test(node)) throw new ConfigError(`NODE_NAME ${JSON.stringify(node)} is not a valid agent identity`);
  const requestName = `baton-agent-${required('POD_NAME')}`.toLowerCase();
  if (!OBJECT_NAME.test(requestName)) throw new ConfigError(`POD_NAME gives an invalid object name ${JSON.stringify(requestName)}`);
  const issuer = process.env.BATON_CERT_ISSUER || 'baton-ca';
  const dir = process.env.BATON_CERT_DIR || '/etc/baton/agent-tls';
  const duration = process.env.BATON_CERT_DURATION || '8760h';
  const saDir = process.env.BATON_SERVICE_ACCOUNT_DIR || SERVICE_ACCOUNT_DIR;
  const api: Api = {
    host: required('KUBERNETES_SERVICE_HOST'),
    port: Number(process.env.KUBERNETES_SERVICE_PORT || 443),
    ca: readFileSync(join(saDir, 'ca.crt'), 'utf8'),
    token: readFileSync(join(saDir, 'token'), 'utf8').trim(),
    namespace: readFileSync(join(saDir, 'namespace'), 'utf8').trim(),
  };

  const { keyPem, csrPem } = createSigningRequest([
    ['CN', node],
    ['OU', 'baton-agent'],
  ]);
  const collection = `/apis/cert-manager.io/v1/namespaces/${encodeURIComponent(api.namespace)}/certificaterequests`;
  const created = await call(api, 'POST', collection, {
    apiVersion: 'cert-manager.io/v1',
    kind: 'CertificateRequest',
    metadata: { name: requestName, labels: { 'app.kubernetes.io/name': 'baton-agent' } },
    spec: {
      request: Buffer.from(csrPem).toString('base64'),
      issuerRef: { name: issuer, kind: 'Issuer', group: 'cert-manager.io' },
      usages: ['digital signature', 'key agreement', 'client auth'],
      duration,
    },
  });
  if (created.status !== 201) throw failure(`creating CertificateRequest ${requestName}`, created);

  const self = `${collection}/${encodeURIComponent(requestName)}`;
  let issued = '';
  let status: CertificateRequestStatus = {};
  const deadline = Date.now() + ISSUE_TIMEOUT_MS;
  try {
    for (;;) {
      const got = await call(api, 'GET', self);
      if (got.status !== 200) throw failure(`reading CertificateRequest ${requestName}`, got);
      status = got.body.status ?? {};
      if (status.certificate) {
        issued = status.certificate;
        break;
      }
      const refused = status.conditions?.find(
        (c) => (c.type === 'Denied' && c.status === 'True') || (c.type === 'Ready' && c.status === 'False' && c.reason === 'Failed'),
      );
      if (refused)
        throw new Error(`CertificateRequest ${requestName} ${refused.type === 'Denied' ? 'denied' : 'failed'}: ${refused.message ?? refused.reason ?? ''}`);
      if (Date.now() > deadline) throw new Error(`CertificateRequest ${requestName} not issued by Issuer ${issuer} within ${ISSUE_TIMEOUT_MS / 1000} s`);
      await sleep(POLL_MS);
    }
  } finally {
    // The request has served its purpose (or failed); cert-manager keeps it otherwise, one per pod start.
    await call(api, 'DELETE', self).catch(() => undefined);
  }

  const certPem = Buffer.from(issued, 'base64').toString('utf8');
  const caPem = status.ca ? Buffer.from(status.ca, 'base64').toString('utf8') : '';
  const cert = new X509Certificate(certPem);
  if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new Error(`the certificate issued for ${requestName} is not for the key this pod made`);
  if (/^CN=(.*)$/m.exec(cert.subject)?.[1] !== node) throw new Error(`the certificate issued names ${cert.subject.replace(/\n/g, ', ')}, expected CN=${node}`);
  if (!caPem) throw new Error(`Issuer ${issuer} returned no CA certificate; use a CA Issuer backed by the Baton CA`);
  mkdirSync(dir, { recursive: true });
  writeAtomically(join(dir, 'tls.key'), keyPem, 0o600);
  writeAtomically(join(dir, 'tls.crt'), certPem, 0o644);
  writeAtomically(join(dir, 'ca.crt'), caPem, 0o644);
  process.stdout.write(`baton-agent-certificate: issued CN=${node} by Issuer ${issuer}, valid until ${cert.validTo}\n`);
});
