import { readFileSync } from 'node:fs';
import { ChannelCredentials, ServerCredentials } from '@grpc/grpc-js';

/** PEM files for TLS; when `cert` is unset, connections are plaintext (local development). */
export interface TlsFiles {
  cert?: string;
  key?: string;
  ca?: string;
}

/**
 * Server credentials: plaintext when no certificate is configured (`insecure`, lib/config.ts
 * resolveTlsConfig), else mutual TLS: a CA is required and every client must present a
 * certificate it signed, since who is calling is read from that certificate (issue 9).
 */
export function serverCredentials(tls: TlsFiles): ServerCredentials {
  if (!tls.cert) return ServerCredentials.createInsecure();
  if (!tls.key) throw new Error('tls-cert is set but tls-key is not');
  if (!tls.ca) throw new Error('tls-cert is set but tls-ca is not; a TLS server requires client certificates signed by tls-ca');
  const ca = readFileSync(tls.ca);
  return ServerCredentials.createSsl(ca, [{ cert_chain: readFileSync(tls.cert), private_key: readFileSync(tls.key) }], true);
}

/** Channel credentials: TLS when a CA or client certificate is configured. */
export function channelCredentials(tls: TlsFiles): ChannelCredentials {
  if (!tls.ca && !tls.cert) return ChannelCredentials.createInsecure();
  return ChannelCredentials.createSsl(
    tls.ca ? readFileSync(tls.ca) : null,
    tls.key ? readFileSync(tls.key) : null,
    tls.cert ? readFileSync(tls.cert) : null,
  );
}
