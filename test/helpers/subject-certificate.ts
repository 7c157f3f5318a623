import { issueClientCertificateForSubject, type SubjectAttribute } from '../../lib/pki';

/**
 * Issues a client certificate with any `subject` (`/CN=x`, `/CN=x/OU=admins`, ...) signed by
 * the lib/pki.ts CA in `dir`: the certificates `baton pki issue` never makes (no Baton role,
 * another OU), to check that services refuse them. Written as `<dir>/<fileName>.pem` and `.key`.
 */
export function issueSubjectCertificate(dir: string, fileName: string, subject: string): { cert: string; key: string } {
  const attributes = subject
    .split('/')
    .filter((part) => part !== '')
    .map((part): SubjectAttribute => {
      const [kind, value] = part.split('=', 2);
      if ((kind !== 'CN' && kind !== 'OU') || !value) throw new Error(`subject part ${JSON.stringify(part)} is not CN=<value> or OU=<value>`);
      return [kind, value];
    });
  return issueClientCertificateForSubject(dir, fileName, attributes);
}
