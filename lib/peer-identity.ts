import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Metadata } from '@grpc/grpc-js';
import type { AuthContext } from '@grpc/grpc-js/build/src/auth-context';
import type { CertRole } from './pki';

/**
 * Who is calling (docs/security.md): read from the client certificate that the
 * TLS handshake verified against the CA, never from a field the caller fills in. Its CN is the
 * name (an agent's node identity, an operator's or a service's name) and its single
 * `OU=baton-<role>` the role. Choria took the caller id from the request it signed itself
 * (docs/choria-compat.md §7); here only the certificate counts. On a plaintext connection
 * (`insecure`, `baton dev`) there is no certificate and the caller may name itself.
 */

/** Request metadata key a plaintext (`insecure`) caller may use to name itself; ignored with TLS. */
export const CALLER_METADATA_KEY = 'x-baton-caller';

/** The caller id of a plaintext call whose metadata names none. */
export const DEFAULT_CALLER = 'user=unknown';

/** The certificate OU of each role: exactly `baton-<role>`. */
const ROLE_BY_OU: Readonly<Record<string, CertRole>> = { 'baton-agent': 'agent', 'baton-service': 'service', 'baton-operator': 'operator' };

/** The party at the other end of a TLS connection, from its verified client certificate. */
export interface Peer {
  /** The certificate's CN; empty when it has none or several. */
  name: string;
  /** From `OU=baton-<role>`; undefined when the OU is missing, repeated or anything else. */
  role: CertRole | undefined;
}

/** What peerOf needs of a call (every grpc-js server call and intercepting call has it). */
export interface AuthenticatedCall {
  getAuthContext(): AuthContext;
}

/** What callerOf needs of a call. */
export interface CallerSource extends AuthenticatedCall {
  metadata: Metadata;
}

/** One value of a subject attribute; undefined when it is absent or given more than once. */
function single(value: string | string[] | undefined): string | undefined {
  if (Array.isArray(value)) return value.length === 1 ? value[0] : undefined;
  return value;
}

/** Name and role from a certificate subject's attributes. */
function peerFromSubject(subject: Record<string, string | string[] | undefined>): Peer {
  const ou = single(subject.OU);
  return { name: single(subject.CN) ?? '', role: ou === undefined ? undefined : ROLE_BY_OU[ou] };
}

/** The peer of a call, from its verified client certificate; undefined on a plaintext connection. */
export function peerOf(call: AuthenticatedCall): Peer | undefined {
  const cert = call.getAuthContext().sslPeerCertificate;
  if (!cert) return undefined;
  return peerFromSubject(cert.subject ?? {});
}

/**
 * Name and role of the PEM certificate in `path`, as a server will read them from it: lets a
 * process check its own certificate before it connects (an agent whose certificate names another
 * node would otherwise be refused on every reconnect).
 */
export function certificateFilePeer(path: string): Peer {
  const subject: Record<string, string | string[] | undefined> = {};
  for (const line of new X509Certificate(readFileSync(path)).subject.split('\n')) {
    const at = line.indexOf('=');
    const key = line.slice(0, at);
    const value = line.slice(at + 1);
    const seen = subject[key];
    subject[key] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value];
  }
  return peerFromSubject(subject);
}

/**
 * The caller id of a call: `cert=<CN>` when it came with a client certificate, whatever its
 * metadata says; on a plaintext connection (insecure mode only) the `x-baton-caller` metadata,
 * or `user=unknown`. Every place that needs "who is calling" uses this.
 */
export function callerOf(call: CallerSource): string {
  const peer = peerOf(call);
  if (peer) return `cert=${peer.name}`;
  const given = call.metadata.get(CALLER_METADATA_KEY)[0];
  return typeof given === 'string' && given !== '' ? given : DEFAULT_CALLER;
}

/** How a peer is named in log lines and errors: `certificate 'node1'`. */
export function describePeer(peer: Peer): string {
  return peer.name === '' ? 'a certificate without a single CN' : `certificate '${peer.name}'`;
}
