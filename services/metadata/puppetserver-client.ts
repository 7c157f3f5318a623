import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { UnavailableError } from '../../lib/errors';

/** Time a Puppet Server request may take, connection to last byte, in ms. */
export const DEFAULT_PUPPETSERVER_TIMEOUT_MS = 30_000;

/** Largest response body read from Puppet Server, in bytes; a larger one is UNAVAILABLE. */
export const MAX_PUPPETSERVER_BODY_BYTES = 64 * 1024 * 1024;

/** Connection settings of a Puppet Server. */
export interface PuppetServerOptions {
  /** Base URL, for example `https://puppet:8140`. */
  url: string;
  /** PEM CA bundle that signed the server's certificate; default the system CAs. */
  caFile?: string;
  /** PEM client certificate and key, for a Puppet Server whose auth.conf wants one. */
  certFile?: string;
  keyFile?: string;
  /** Default DEFAULT_PUPPETSERVER_TIMEOUT_MS. */
  timeoutMs?: number;
}

/** One response: status, content type and the whole body. */
export interface PuppetServerResponse {
  status: number;
  contentType: string;
  body: Buffer;
}

/**
 * A GET-only client of one Puppet Server (docs/task-format.md §3, docs/choria-compat.md §1.1), over
 * node:http(s) with a keep-alive agent and the site's CA and client certificate.
 */
export class PuppetServerClient {
  readonly url: URL;
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly timeoutMs: number;

  constructor(options: PuppetServerOptions) {
    this.url = new URL(options.url);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_PUPPETSERVER_TIMEOUT_MS;
    this.agent =
      this.url.protocol === 'https:'
        ? new HttpsAgent({
            keepAlive: true,
            ca: options.caFile ? readFileSync(options.caFile) : undefined,
            cert: options.certFile ? readFileSync(options.certFile) : undefined,
            key: options.keyFile ? readFileSync(options.keyFile) : undefined,
          })
        : new HttpAgent({ keepAlive: true });
  }

  /** The base URL without a trailing slash, for messages. */
  get base(): string {
    return this.url.href.replace(/\/$/, '');
  }

  /** GETs `path` (already URL-encoded) with `query`; rejects with UnavailableError only when there is no HTTP answer. */
  get(path: string, query: Record<string, string>, accept: string): Promise<PuppetServerResponse> {
    const target = new URL(this.url.pathname.replace(/\/$/, '') + path, this.url);
    for (const [k, v] of Object.entries(query)) target.searchParams.set(k, v);
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const unavailable = (why: string) => new UnavailableError(`Puppet Server ${this.base} cannot be reached: ${why}`);
      const req = send(
        target,
        { method: 'GET', agent: this.agent, headers: { Accept: accept, 'User-Agent': 'baton-metadata' }, timeout: this.timeoutMs },
        (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_PUPPETSERVER_BODY_BYTES) {
              req.destroy();
              reject(new UnavailableError(`Puppet Server ${this.base} sent more than ${MAX_PUPPETSERVER_BODY_BYTES} bytes for ${path}`));
              return;
            }
            chunks.push(chunk);
          });
          res.on('error', (err) => reject(unavailable(err.message)));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks) }));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => reject(unavailable(err.code ?? err.message)));
      req.end();
    });
  }

  /** Closes idle keep-alive connections. */
  close(): void {
    this.agent.destroy();
  }
}
