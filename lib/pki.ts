import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  Extension,
  Extensions,
  GeneralName,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  Name,
  RelativeDistinguishedName,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
  TBSCertificate,
  Validity,
  Version,
} from '@peculiar/asn1-x509';
import { IDENTITY_PATTERN } from './names';

/**
 * Baton's certificates (docs/security.md "Transport and certificates"): a CA and leaf
 * certificates for services, agents and operators. Keys and signatures come from node:crypto and
 * the certificate structure from @peculiar/asn1-x509 (RFC 5280 types), so no system binary is
 * needed: the slim runtime image and `baton pki` work anywhere Node does. Every key is ECDSA P-256.
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

/** A PKI problem an operator can fix (bad name, no CA, unreadable CA), meant to be printed as one line. */
export class PkiError extends Error {}

/** The CA files exist but cannot be used (damaged, or not a certificate and key): a failure rather than a usage error. */
export class CaUnreadableError extends PkiError {}

/** `DNS:host.name` or `IP:v4-or-v6`: checked so a SAN cannot smuggle anything else into a certificate. */
const SAN_PATTERN = /^(DNS:[A-Za-z0-9*_.-]{1,253}|IP:[0-9A-Fa-f:.]{2,45})$/;

/** ecdsa-with-SHA256 (RFC 5758 section 3.2): the only signature Baton makes, by P-256 keys. */
const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const OID_COMMON_NAME = '2.5.4.3';
const OID_ORGANIZATIONAL_UNIT = '2.5.4.11';
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const DAY_MS = 24 * 60 * 60 * 1000;

function checkDays(days: number | undefined, fallback: number): number {
  const d = days ?? fallback;
  if (!Number.isInteger(d) || d < 1 || d > 36500) throw new PkiError(`days must be an integer from 1 to 36500, got ${String(days)}`);
  return d;
}

/** Creates `dir` (0700) when missing. */
function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/** Writes `content` to `path` through a temporary file, so a reader never sees half a certificate and a key is 0600 from its first byte. */
function writeAtomically(path: string, content: string, mode: number): void {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, content, { mode, flag: 'wx' });
  renameSync(tmp, path);
}

/** A new P-256 key pair; the private half as PKCS#8 PEM, the same form `openssl genpkey` wrote. */
function newKeyPair(): { privateKey: KeyObject; publicKey: KeyObject; pem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicKey, pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

/** A random positive 128-bit serial, so no serial file is needed and serials never repeat. */
function randomSerial(): ArrayBuffer {
  const bytes = randomBytes(16);
  bytes[0] &= 0x7f;
  bytes[0] |= 0x01;
  return toArrayBuffer(bytes);
}

function toArrayBuffer(bytes: Buffer): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** One attribute of a subject, in the order it is written: a common name or an organizational unit. */
export type SubjectAttribute = ['CN' | 'OU', string];

/** The subject of `attributes`, each in its own RDN and as UTF8String, as `openssl req -subj /CN=../OU=..` wrote them. */
function subjectName(attributes: SubjectAttribute[]): Name {
  const rdn = ([kind, value]: SubjectAttribute) =>
    new RelativeDistinguishedName([
      new AttributeTypeAndValue({ type: kind === 'CN' ? OID_COMMON_NAME : OID_ORGANIZATIONAL_UNIT, value: new AttributeValue({ utf8String: value }) }),
    ]);
  return new Name(attributes.map(rdn));
}

function extension(extnID: string, critical: boolean, value: unknown): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
}

/** The subjectKeyIdentifier of a key: SHA-1 of its subjectPublicKey bits (RFC 5280 section 4.2.1.2, method 1), as openssl's `hash`. */
function keyIdentifier(spki: SubjectPublicKeyInfo): ArrayBuffer {
  return toArrayBuffer(createHash('sha1').update(Buffer.from(spki.subjectPublicKey)).digest());
}

function publicKeyInfo(publicKey: KeyObject): SubjectPublicKeyInfo {
  return AsnConvert.parse(publicKey.export({ type: 'spki', format: 'der' }), SubjectPublicKeyInfo);
}

/** What a new certificate says; `signer` signs it (the subject's own key for the CA). */
interface CertificateFields {
  subject: Name;
  issuer: Name;
  days: number;
  publicKey: SubjectPublicKeyInfo;
  extensions: Extension[];
  signer: KeyObject;
}

/** Builds, signs (ECDSA P-256 with SHA-256, node:crypto) and PEM-encodes an X.509 v3 certificate. */
function signCertificate(fields: CertificateFields): string {
  const algorithm = new AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA256 });
  const now = Date.now();
  const tbsCertificate = new TBSCertificate({
    version: Version.v3,
    serialNumber: randomSerial(),
    signature: algorithm,
    issuer: fields.issuer,
    validity: new Validity({ notBefore: new Date(now), notAfter: new Date(now + fields.days * DAY_MS) }),
    subject: fields.subject,
    subjectPublicKeyInfo: fields.publicKey,
    extensions: new Extensions(fields.extensions),
  });
  const tbs = Buffer.from(AsnConvert.serialize(tbsCertificate));
  const signature = sign('sha256', tbs, { key: fields.signer, dsaEncoding: 'der' });
  const der = Buffer.from(AsnConvert.serialize(new Certificate({ tbsCertificate, signatureAlgorithm: algorithm, signatureValue: toArrayBuffer(signature) })));
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`;
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
  const pair = newKeyPair();
  const publicKey = publicKeyInfo(pair.publicKey);
  const name = subjectName([
    ['CN', CA_COMMON_NAME],
    ['OU', 'baton-ca'],
  ]);
  const pem = signCertificate({
    subject: name,
    issuer: name,
    days,
    publicKey,
    signer: pair.privateKey,
    extensions: [
      extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: true, pathLenConstraint: 0 })),
      extension(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign)),
      extension(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(keyIdentifier(publicKey))),
    ],
  });
  writeAtomically(key, pair.pem, 0o600);
  writeAtomically(cert, pem, 0o644);
  return { ca: cert, cert, key };
}

/** The CA of `root`: its subject (copied byte for byte as the issuer), key identifier and private key; one PkiError line when unreadable. */
function loadCa(root: string, certPath: string, keyPath: string): { subject: Name; keyId: ArrayBuffer; key: KeyObject } {
  try {
    const ca = AsnConvert.parse(new X509Certificate(readFileSync(certPath)).raw, Certificate);
    const tbs = ca.tbsCertificate;
    const ski = tbs.extensions?.find((e) => e.extnID === id_ce_subjectKeyIdentifier);
    const keyId = ski ? AsnConvert.parse(ski.extnValue, SubjectKeyIdentifier).buffer : keyIdentifier(tbs.subjectPublicKeyInfo);
    return { subject: tbs.subject, keyId, key: createPrivateKey(readFileSync(keyPath)) };
  } catch (err) {
    throw new CaUnreadableError(`cannot read the CA in ${root}: ${(err as Error).message.split('\n')[0]}`);
  }
}

/** The subjectAltName entries of a leaf: a service also answers to its name, localhost and 127.0.0.1. */
function leafAltNames(role: CertRole, name: string, sans: string[]): GeneralName[] {
  const all = role === 'service' ? [`DNS:${name}`, 'DNS:localhost', 'IP:127.0.0.1', ...sans] : sans;
  return [...new Set(all)].map((san) => (san.startsWith('DNS:') ? new GeneralName({ dNSName: san.slice(4) }) : new GeneralName({ iPAddress: san.slice(3) })));
}

/** A CA directory that holds a CA, as an absolute path; one PkiError line when it does not. */
function caDir(dir: string): { root: string; ca: string; caKey: string } {
  const root = resolve(dir);
  const ca = join(root, 'ca.pem');
  const caKey = join(root, 'ca.key');
  if (!existsSync(ca) || !existsSync(caKey)) throw new PkiError(`no CA in ${root}; run \`baton pki init --dir ${root}\` first`);
  return { root, ca, caKey };
}

/** What a leaf certificate says besides its key. */
interface LeafFields {
  subject: SubjectAttribute[];
  usages: string[];
  altNames: GeneralName[];
  days: number;
}

/** Signs a new leaf with the CA in `root` and writes `<root>/<fileBase>.pem` and `.key` (0600). */
function writeLeaf(dir: { root: string; ca: string; caKey: string }, fileBase: string, fields: LeafFields): IssuedFiles {
  const issuer = loadCa(dir.root, dir.ca, dir.caKey);
  const pair = newKeyPair();
  const publicKey = publicKeyInfo(pair.publicKey);
  const extensions = [
    extension(id_ce_basicConstraints, true, new BasicConstraints({ cA: false })),
    extension(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyAgreement)),
    extension(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(keyIdentifier(publicKey))),
    extension(id_ce_authorityKeyIdentifier, false, new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(issuer.keyId) })),
    extension(id_ce_extKeyUsage, false, new ExtendedKeyUsage(fields.usages)),
  ];
  if (fields.altNames.length > 0) extensions.push(extension(id_ce_subjectAltName, false, new SubjectAlternativeName(fields.altNames)));
  const pem = signCertificate({ subject: subjectName(fields.subject), issuer: issuer.subject, days: fields.days, publicKey, signer: issuer.key, extensions });
  const cert = join(dir.root, `${fileBase}.pem`);
  const key = join(dir.root, `${fileBase}.key`);
  writeAtomically(key, pair.pem, 0o600);
  writeAtomically(cert, pem, 0o644);
  return { cert, key, ca: dir.ca };
}

function checkName(name: string): void {
  if (!IDENTITY_PATTERN.test(name)) {
    throw new PkiError(
      `invalid certificate name ${JSON.stringify(name)}; expected letters, digits, '.', '_' or '-', starting with a letter or digit, at most 253 characters`,
    );
  }
}

/**
 * Issues a certificate of `role` for `name`, signed by the CA in `dir`: writes
 * `<dir>/<role>-<name>.pem` and `.key` (0600), replacing an earlier one of the same name (a
 * renewal). `name` must be a node identity (IDENTITY_PATTERN): it becomes the CN, a file name,
 * and for services a DNS name. Services get DNS:<name>, DNS:localhost, IP:127.0.0.1 and `sans`.
 */
export function issueCertificate(dir: string, role: CertRole, name: string, options: IssueOptions = {}): IssuedFiles {
  if (!CERT_ROLES.includes(role)) throw new PkiError(`unknown certificate role '${String(role)}'; expected one of ${CERT_ROLES.join(', ')}`);
  checkName(name);
  const sans = options.sans ?? [];
  for (const san of sans)
    if (!SAN_PATTERN.test(san) || (san.startsWith('IP:') && isIP(san.slice(3)) === 0))
      throw new PkiError(`invalid subjectAltName ${JSON.stringify(san)}; expected DNS:<name> or IP:<address>`);
  const days = checkDays(options.days, DEFAULT_LEAF_DAYS);
  const ca = caDir(dir);
  // Services are both servers (to the CLI and agents) and clients (the scheduler calls metadata and results).
  const usages = role === 'service' ? [OID_SERVER_AUTH, OID_CLIENT_AUTH] : [OID_CLIENT_AUTH];
  return writeLeaf(ca, `${role}-${name}`, {
    subject: [
      ['CN', name],
      ['OU', `baton-${role}`],
    ],
    usages,
    altNames: leafAltNames(role, name, sans),
    days,
  });
}

/**
 * Issues a client certificate with any `subject` (no Baton role, another OU, two OUs), signed by
 * the CA in `dir`, as `<dir>/<fileName>.pem` and `.key`, valid for two days: certificates
 * `baton pki issue` never makes, so tests can show that services refuse them.
 */
export function issueClientCertificateForSubject(dir: string, fileName: string, subject: SubjectAttribute[]): IssuedFiles {
  checkName(fileName);
  return writeLeaf(caDir(dir), fileName, { subject, usages: [OID_CLIENT_AUTH], altNames: [], days: 2 });
}

/** A private key and a PKCS#10 certificate signing request for it, both PEM. */
export interface SigningRequest {
  keyPem: string;
  csrPem: string;
}

/** DER of one element: tag, definite length, content. */
function der(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const length = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, content]);
}

function pem(label: string, body: Buffer): string {
  return `-----BEGIN ${label}-----\n${(body.toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END ${label}-----\n`;
}

/**
 * A new P-256 key and a certificate signing request (RFC 2986) for `subject`, signed with it, for
 * a CA elsewhere (cert-manager) to issue from. The issuer, not the request, decides usages and
 * lifetime, so the request carries the subject and the key alone.
 */
export function createSigningRequest(subject: SubjectAttribute[]): SigningRequest {
  const pair = newKeyPair();
  const SEQUENCE = 0x30;
  const info = der(
    SEQUENCE,
    Buffer.concat([
      Buffer.from([0x02, 0x01, 0x00]), // version 0
      Buffer.from(AsnConvert.serialize(subjectName(subject))),
      Buffer.from(AsnConvert.serialize(publicKeyInfo(pair.publicKey))),
      Buffer.from([0xa0, 0x00]), // no attributes
    ]),
  );
  const signature = sign('sha256', info, { key: pair.privateKey, dsaEncoding: 'der' });
  const algorithm = Buffer.from(AsnConvert.serialize(new AlgorithmIdentifier({ algorithm: ECDSA_WITH_SHA256 })));
  const bitString = der(0x03, Buffer.concat([Buffer.from([0x00]), signature]));
  return { keyPem: pair.pem, csrPem: pem('CERTIFICATE REQUEST', der(SEQUENCE, Buffer.concat([info, algorithm, bitString]))) };
}
