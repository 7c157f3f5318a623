import { readFileSync } from 'node:fs';
import { ChannelCredentials, ServerCredentials } from '@grpc/grpc-js';

/** PEM files for TLS; when `cert` is unset, connections are plaintext (local development). */
export interface TlsFiles {
  cert?: string;
  key?: string;
  ca?: string;
}

/** Server credentials: TLS when a certificate is configured, client certificates required when a CA is. */
export function serverCredentials(tls: TlsFiles): ServerCredentials {
  if (!tls.cert) return ServerCredentials.createInsecure();
  if (!tls.key) throw new Error('tls-cert is set but tls-key is not');
  const ca = tls.ca ? readFileSync(tls.ca) : null;
  return ServerCredentials.createSsl(ca, [{ cert_chain: readFileSync(tls.cert), private_key: readFileSync(tls.key) }], ca !== null);
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
