import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { IDENTITY_PATTERN } from './names';

/**
 * Baton's certificates (issue 9, docs/security.md "Transport and certificates"): a CA and leaf
 * certificates for services, agents and operators, made with the system's `openssl` (run with
 * execFile, never through a shell) rather than hand-rolled crypto. Every key is ECDSA P-256.
 * A leaf's subject is `/CN=<name>/OU=baton-<role>`: the CN is the identity the services trust
 * (an agent's node name, an operator's caller id `cert=<name>`), the OU its role.
 */

/** What a certificate is for; it becomes the subject's `OU=baton-<role>`. */
export type CertRole = 'agent' | 'service' | 'operator';

/** Every CertRole, in the order `baton pki issue --help` lists them. */
export const CERT_ROLES: readonly CertRole[] = ['agent', 'service', 'operator'];

/** Validity of a new CA in days (ten years). */
export const DEFAULT_CA_DAYS = 3650;

/** Validity of a new leaf certificate in days (one year). */
export const DEFAULT_LEAF_DAYS = 365;

/** Common name of the CA certificate. */
export const CA_COMMON_NAME = 'Baton CA';

/** Files of a CA: `ca` and `cert` are the same ca.pem (so it reads like IssuedFiles), `key` is ca.key. */
export interface CaFiles {
  ca: string;
  cert: string;
  key: string;
}

/** Files of an issued certificate: its PEM certificate, its private key (0600) and the CA that signed it. */
export interface IssuedFiles {
  cert: string;
  key: string;
  ca: string;
}

/** Options of `createCa`. */
export interface CaOptions {
  /** Validity in days; default DEFAULT_CA_DAYS. */
  days?: number;
}

/** Options of `issueCertificate`. */
export interface IssueOptions {
  /** Extra subjectAltNames, each `DNS:<name>` or `IP:<address>`; only services get SANs. */
  sans?: string[];
  /** Validity in days; default DEFAULT_LEAF_DAYS. */
  days?: number;
}

/** A PKI problem an operator can fix (bad name, no CA, no openssl), meant to be printed as one line. */
export class PkiError extends Error {}

/** The `openssl` command is not installed (or not on PATH). */
export class OpensslMissingError extends PkiError {}

/** `DNS:host.name` or `IP:v4-or-v6`: checked because a SAN is written into an openssl extension file. */
const SAN_PATTERN = /^(DNS:[A-Za-z0-9*_.-]{1,253}|IP:[0-9A-Fa-f:.]{2,45})$/;

/** Runs openssl with arguments (no shell) and returns its stdout; a missing binary or a failure is one PkiError line. */
function openssl(args: string[], input?: string): string {
  try {
    return execFileSync('openssl', args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new OpensslMissingError('openssl was not found on PATH; install it (Debian/Ubuntu: apt-get install openssl)');
    const detail = (e.stderr ?? e.message).trim().split('\n')[0];
    throw new PkiError(`openssl ${args[0]} failed: ${detail}`);
  }
}

function checkDays(days: number | undefined, fallback: number): number {
  const d = days ?? fallback;
  if (!Number.isInteger(d) || d < 1 || d > 36500) throw new PkiError(`days must be an integer from 1 to 36500, got ${String(days)}`);
  return d;
}

/** Creates `dir` (0700) when missing. */
function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/** A new P-256 private key (PKCS#8 PEM), written to `path` with mode 0600 from the first byte. */
function writeNewKey(path: string): void {
  const pem = openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']);
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, pem, { mode: 0o600, flag: 'wx' });
  renameSync(tmp, path);
}

/** Writes `content` to `path` through a temporary file, so a reader never sees half a certificate. */
function writeAtomically(path: string, content: string, mode: number): void {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, content, { mode, flag: 'wx' });
  renameSync(tmp, path);
}

/** A random positive 128-bit serial, so no `.srl` file is needed and serials never repeat. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] &= 0x7f;
  bytes[0] |= 0x01;
  return '0x' + bytes.toString('hex');
}

/**
 * Creates a CA in `dir`: `ca.pem` and `ca.key` (0600). Refuses when either file already
 * exists: a new CA would silently orphan every certificate the old one issued.
 */
export function createCa(dir: string, options: CaOptions = {}): CaFiles {
  const days = checkDays(options.days, DEFAULT_CA_DAYS);
  const root = resolve(dir);
  const cert = join(root, 'ca.pem');
  const key = join(root, 'ca.key');
  for (const f of [cert, key]) if (existsSync(f)) throw new PkiError(`a CA already exists in ${root} (${f}); refusing to overwrite it`);
  ensureDir(root);
  writeNewKey(key);
  const pem = openssl([
    'req', '-new', '-x509', '-key', key, '-sha256', '-days', String(days), '-set_serial', randomSerial(),
    '-subj', `/CN=${CA_COMMON_NAME}/OU=baton-ca`,
    '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-addext', 'subjectKeyIdentifier=hash',
  ]);
  writeAtomically(cert, pem, 0o644);
  return { ca: cert, cert, key };
}

/** The openssl extension lines of a leaf of `role`. */
function leafExtensions(role: CertRole, name: string, sans: string[]): string {
  const lines = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyAgreement',
    'subjectKeyIdentifier=hash',
    'authorityKeyIdentifier=keyid',
  ];
  if (role === 'service') {
    // Services are both servers (to the CLI and agents) and clients (the scheduler calls metadata and results).
    lines.push('extendedKeyUsage=serverAuth,clientAuth');
    const all = [`DNS:${name}`, 'DNS:localhost', 'IP:127.0.0.1', ...sans];
    lines.push(`subjectAltName=${[...new Set(all)].join(',')}`);
  } else {
    lines.push('extendedKeyUsage=clientAuth');
    if (sans.length > 0) lines.push(`subjectAltName=${[...new Set(sans)].join(',')}`);
  }
  return lines.join('\n') + '\n';
}

/**
 * Issues a certificate of `role` for `name`, signed by the CA in `dir`: writes
 * `<dir>/<role>-<name>.pem` and `.key` (0600), replacing an earlier one of the same name (a
 * renewal). `name` must be a node identity (IDENTITY_PATTERN): it becomes the CN, a file name,
 * and for services a DNS name. Services get DNS:<name>, DNS:localhost, IP:127.0.0.1 and `sans`.
 */
export function issueCertificate(dir: string, role: CertRole, name: string, options: IssueOptions = {}): IssuedFiles {
  if (!CERT_ROLES.includes(role)) throw new PkiError(`unknown certificate role '${String(role)}'; expected one of ${CERT_ROLES.join(', ')}`);
  if (!IDENTITY_PATTERN.test(name)) {
    throw new PkiError(`invalid certificate name ${JSON.stringify(name)}; expected letters, digits, '.', '_' or '-', starting with a letter or digit, at most 253 characters`);
  }
  const sans = options.sans ?? [];
  for (const san of sans) if (!SAN_PATTERN.test(san)) throw new PkiError(`invalid subjectAltName ${JSON.stringify(san)}; expected DNS:<name> or IP:<address>`);
  const days = checkDays(options.days, DEFAULT_LEAF_DAYS);
  const root = resolve(dir);
  const ca = join(root, 'ca.pem');
  const caKey = join(root, 'ca.key');
  if (!existsSync(ca) || !existsSync(caKey)) throw new PkiError(`no CA in ${root}; run \`baton pki init --dir ${root}\` first`);

  const cert = join(root, `${role}-${name}.pem`);
  const key = join(root, `${role}-${name}.key`);
  const work = mkdtempSync(join(root, '.issue-'));
  try {
    const newKey = join(work, 'leaf.key');
    writeNewKey(newKey);
    const csr = join(work, 'leaf.csr');
    const ext = join(work, 'leaf.ext');
    openssl(['req', '-new', '-key', newKey, '-subj', `/CN=${name}/OU=baton-${role}`, '-out', csr]);
    writeFileSync(ext, leafExtensions(role, name, sans), { mode: 0o600 });
    const pem = openssl(['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-sha256', '-days', String(days), '-set_serial', randomSerial(), '-extfile', ext]);
    renameSync(newKey, key);
    writeAtomically(cert, pem, 0o644);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { cert, key, ca };
}
