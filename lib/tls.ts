import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { ChannelCredentials, ServerCredentials } from '@grpc/grpc-js';
import { defaultCaCerts } from './extra-ca-certs';
import { splitHostPort, type HostPort } from './host-port';

/** PEM files for TLS; when `cert` is unset, connections are plaintext (local development). */
export interface TlsFiles {
  cert?: string;
  key?: string;
  ca?: string;
}

/**
 * Server credentials: plaintext when no certificate is configured (`insecure`, lib/config.ts
 * resolveTlsConfig), else mutual TLS: a CA is required and every client must present a
 * certificate it signed, since who is calling is read from that certificate.
 */
export function serverCredentials(tls: TlsFiles): ServerCredentials {
  if (!tls.cert) return ServerCredentials.createInsecure();
  if (!tls.key) throw new Error('tls-cert is set but tls-key is not');
  if (!tls.ca) throw new Error('tls-cert is set but tls-ca is not; a TLS server requires client certificates signed by tls-ca');
  const ca = readFileSync(tls.ca);
  return ServerCredentials.createSsl(ca, [{ cert_chain: readFileSync(tls.cert), private_key: readFileSync(tls.key) }], true);
}

/**
 * Channel credentials: TLS when a CA or client certificate is configured; without a CA, servers
 * are checked against Node's store (defaultCaCerts).
 */
export function channelCredentials(tls: TlsFiles): ChannelCredentials {
  if (!tls.ca && !tls.cert) return ChannelCredentials.createInsecure();
  return ChannelCredentials.createSsl(
    tls.ca ? readFileSync(tls.ca) : (defaultCaCerts() ?? null),
    tls.key ? readFileSync(tls.key) : null,
    tls.cert ? readFileSync(tls.cert) : null,
  );
}

/**
 * What a TLS probe of a server found (probeTls):
 * - TLS_REQUIRED: we speak plaintext, the server speaks TLS.
 * - PLAINTEXT_SERVER: the server does not speak TLS (it runs with `insecure`).
 * - CERTIFICATE_REQUIRED: the server wants a client certificate and we gave none.
 * - CERTIFICATE_REFUSED: the server rejected our client certificate (another CA, expired, wrong use).
 * - SERVER_UNTRUSTED: the server's certificate is not signed by our CA, or not for this address.
 * - UNREACHABLE: no TCP connection at all.
 * - NO_TLS_PROBLEM: the handshake (or plaintext) is fine; the failure is something else.
 */
export type TlsProbeOutcome =
  'TLS_REQUIRED' | 'PLAINTEXT_SERVER' | 'CERTIFICATE_REQUIRED' | 'CERTIFICATE_REFUSED' | 'SERVER_UNTRUSTED' | 'UNREACHABLE' | 'NO_TLS_PROBLEM';

/** How long probeTls waits for a handshake, and after it for the server's alert refusing our certificate. */
export const TLS_PROBE_TIMEOUT_MS = 3_000;
const TLS_PROBE_ALERT_WAIT_MS = 1_000;

/** `host:port` or `[v6]:port` split for net.connect; anything else as one host name, which fails to resolve. */
function splitAddress(address: string): HostPort {
  return splitHostPort(address) ?? { host: address, port: 0 };
}

/** Sorts a TLS or socket error into an outcome; `detail` keeps OpenSSL's words without its file and line. */
function classify(err: NodeJS.ErrnoException, plaintextClient: boolean): { outcome: TlsProbeOutcome; detail: string } {
  const message = err.message;
  const detail = (/SSL routines:[^:]*:([^:\n]+)/.exec(message)?.[1] ?? message.split('\n')[0]).trim();
  if (['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT'].includes(err.code ?? ''))
    return { outcome: 'UNREACHABLE', detail: err.code! };
  // A plaintext HTTP/2 server answers a ClientHello with bytes that are no TLS record (observed
  // with grpc-js: "wrong version number"), or hangs up.
  if (
    /wrong version number|packet length too long|unknown protocol|ECONNRESET|socket hang up|disconnected before secure/i.test(message) ||
    err.code === 'ECONNRESET'
  ) {
    return { outcome: plaintextClient ? 'NO_TLS_PROBLEM' : 'PLAINTEXT_SERVER', detail };
  }
  if (plaintextClient) return { outcome: 'TLS_REQUIRED', detail };
  if (/alert certificate required/.test(message)) return { outcome: 'CERTIFICATE_REQUIRED', detail: 'no client certificate' };
  if (
    /alert (unknown ca|bad certificate|certificate unknown|unsupported certificate|certificate expired|decrypt error|handshake failure|access denied)/.test(
      message,
    )
  )
    return { outcome: 'CERTIFICATE_REFUSED', detail };
  if (err.code && /CERT|SELF_SIGNED|UNABLE_TO|ALTNAME/.test(err.code)) return { outcome: 'SERVER_UNTRUSTED', detail: message };
  return { outcome: 'NO_TLS_PROBLEM', detail };
}

/**
 * Finds out why a gRPC connection to `address` fails when grpc-js only says "Failed to
 * connect" (it does for a plaintext client at a TLS server and for a client certificate the
 * server refused; measured in lib/tls.test.ts): one TLS handshake with node:tls, with our
 * certificate when `tls` has one, then a short wait for the server's alert (TLS 1.3 refuses a
 * client certificate after the client considers the handshake done).
 */
export function probeTls(address: string, tls: TlsFiles, timeoutMs = TLS_PROBE_TIMEOUT_MS): Promise<{ outcome: TlsProbeOutcome; detail: string }> {
  const plaintextClient = !tls.ca && !tls.cert;
  const { host, port } = splitAddress(address);
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: { outcome: TlsProbeOutcome; detail: string }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const socket = tlsConnect({
      host,
      port,
      ALPNProtocols: ['h2'],
      // The same name checks grpc-js makes: the address's host must be in the certificate.
      ...(isIP(host) ? {} : { servername: host }),
      rejectUnauthorized: !plaintextClient,
      ca: tls.ca ? readFileSync(tls.ca) : defaultCaCerts(),
      cert: tls.cert ? readFileSync(tls.cert) : undefined,
      key: tls.key ? readFileSync(tls.key) : undefined,
    });
    const timer = setTimeout(() => finish({ outcome: 'NO_TLS_PROBLEM', detail: 'no answer' }), timeoutMs);
    socket.on('error', (err: NodeJS.ErrnoException) => finish(classify(err, plaintextClient)));
    socket.on('secureConnect', () => {
      if (plaintextClient) return finish({ outcome: 'TLS_REQUIRED', detail: 'the server speaks TLS' });
      setTimeout(() => finish({ outcome: 'NO_TLS_PROBLEM', detail: 'handshake completed' }), TLS_PROBE_ALERT_WAIT_MS).unref();
    });
    socket.on('close', () =>
      finish(
        plaintextClient
          ? { outcome: 'NO_TLS_PROBLEM', detail: 'closed' }
          : { outcome: 'CERTIFICATE_REFUSED', detail: 'the server closed the connection after the handshake' },
      ),
    );
  });
}
