import { readFileSync } from 'node:fs';

/**
 * Where the `baton` launcher (bin/baton.sh) hands on NODE_EXTRA_CA_CERTS, which it takes out
 * of Node's environment so that Node does not read Node's root certificates and that file as
 * the CLI starts.
 */
export const EXTRA_CA_CERTS_HANDOFF = 'BATON_NODE_EXTRA_CA_CERTS';

/** The NODE_EXTRA_CA_CERTS file this process started without, once takeExtraCaCerts took it. */
let unread: string | undefined;

/**
 * Takes the launcher's hand-off: NODE_EXTRA_CA_CERTS is set again in `env` (for every process
 * the CLI starts, which reads it as usual), and the file is remembered for defaultCaCerts.
 */
export function takeExtraCaCerts(env: NodeJS.ProcessEnv = process.env): void {
  const file = env[EXTRA_CA_CERTS_HANDOFF];
  if (file === undefined) return;
  delete env[EXTRA_CA_CERTS_HANDOFF];
  if (file === '' || env.NODE_EXTRA_CA_CERTS) return;
  env.NODE_EXTRA_CA_CERTS = file;
  unread = file;
}

/**
 * The CAs a TLS client of this process trusts when it is given none: undefined when Node's own
 * store holds them all, else Node's root certificates and the NODE_EXTRA_CA_CERTS file it
 * started without, as Node would have trusted them. An unreadable file adds nothing, as Node
 * only warns about one.
 */
export function defaultCaCerts(): Buffer | undefined {
  if (unread === undefined) return undefined;
  let extra: Buffer;
  try {
    extra = readFileSync(unread);
  } catch {
    return undefined;
  }
  // Loaded here, not at start-up: the commands that never check a server need no TLS module.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { rootCertificates } = require('node:tls') as typeof import('node:tls');
  return Buffer.concat([Buffer.from(`${rootCertificates.join('\n')}\n`), extra]);
}
