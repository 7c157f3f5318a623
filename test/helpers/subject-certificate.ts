import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Issues a client certificate with any `subject` (`/CN=x`, `/CN=x/OU=admins`, ...) signed by
 * the lib/pki.ts CA in `dir`: the certificates `baton pki issue` never makes (no Baton role,
 * another OU), to check that services refuse them. Written as `<dir>/<fileName>.pem` and
 * `.key`; made with openssl through execFile, as lib/pki.ts does.
 */
export function issueSubjectCertificate(dir: string, fileName: string, subject: string): { cert: string; key: string } {
  const cert = join(dir, `${fileName}.pem`);
  const key = join(dir, `${fileName}.key`);
  const work = mkdtempSync(join(dir, '.subject-'));
  try {
    const csr = join(work, 'leaf.csr');
    const ext = join(work, 'leaf.ext');
    execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key], { stdio: 'pipe' });
    execFileSync('openssl', ['req', '-new', '-key', key, '-subj', subject, '-out', csr], { stdio: 'pipe' });
    writeFileSync(ext, 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=clientAuth\n');
    const args = ['x509', '-req', '-in', csr, '-CA', join(dir, 'ca.pem'), '-CAkey', join(dir, 'ca.key'), '-sha256', '-days', '2', '-set_serial', '0x1' + randomBytes(15).toString('hex'), '-extfile', ext, '-out', cert];
    execFileSync('openssl', args, { stdio: 'pipe' });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { cert, key };
}
