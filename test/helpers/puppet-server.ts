import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

/**
 * A small stand-in for Puppet Server's tasks API, answering exactly the shapes, status codes
 * and texts of docs/task-format.md §3 (Puppet Server `master_core.clj`, `tasks_int_test.clj`), for
 * testing Baton's Puppet Server source. Tasks and file contents can be changed between
 * requests; every request path is recorded.
 */

/** One file of a fake task: where it lives in its module, and its bytes. */
export interface FakeFile {
  module: string;
  mount: 'tasks' | 'files' | 'lib' | 'scripts';
  /** Path under the mount. */
  rel: string;
  content: string | Buffer;
  /** True for an implementation (listed by bare basename), false for an extra file. */
  implementation: boolean;
}

/** One task of a fake environment. */
export interface FakeTask {
  module: string;
  /** Short name; `init` for the module's init task. */
  task: string;
  /** The metadata document, sent verbatim. */
  metadata: Record<string, unknown>;
  files: FakeFile[];
  /** Set for a task that fails to load: answered 500 with this body and left out of listings. */
  error?: { kind: string; msg: string; details: Record<string, unknown> };
}

/** Options of startFakePuppetServer. */
export interface FakePuppetServerOptions {
  /** Environment name → its tasks. */
  environments: Record<string, FakeTask[]>;
  /** False to answer listings like an older Puppet Server: `name` and `environment` only. */
  listDescriptions?: boolean;
  /** PEM files: serve HTTPS with this certificate and require a client certificate signed by `ca`, as Puppet Server does. */
  tls?: { cert: string; key: string; ca: string };
}

/** A running fake Puppet Server. */
export interface FakePuppetServer {
  url: string;
  /** Every request's path and query, in order. */
  requests: string[];
  options: FakePuppetServerOptions;
  stop(): Promise<void>;
}

function canonical(t: FakeTask): string {
  return t.task === 'init' ? t.module : `${t.module}::${t.task}`;
}

/** The `uri.path` of a file by mount (docs/task-format.md §3.3). */
export function fakeFileUriPath(f: FakeFile): string {
  const rel = f.rel.split('/').map(encodeURIComponent).join('/');
  switch (f.mount) {
    case 'tasks':
      return `/puppet/v3/file_content/tasks/${f.module}/${rel}`;
    case 'files':
      return `/puppet/v3/file_content/modules/${f.module}/${rel}`;
    case 'lib':
      return `/puppet/v3/file_content/plugins/${rel}`;
    case 'scripts':
      return `/puppet/v3/file_content/scripts/${f.module}/${rel}`;
  }
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Starts the fake on 127.0.0.1 at a free port. */
export async function startFakePuppetServer(options: FakePuppetServerOptions): Promise<FakePuppetServer> {
  const requests: string[] = [];
  const text = (res: ServerResponse, code: number, body: string) => {
    res.writeHead(code, { 'Content-Type': 'text/plain' });
    res.end(body);
  };
  const json = (res: ServerResponse, code: number, body: unknown) => {
    res.writeHead(code, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    requests.push(url.pathname + url.search);
    if (req.method !== 'GET') return text(res, 405, 'Method Not Allowed');
    const parts = url.pathname.split('/').map(decodeURIComponent);
    if (url.pathname === '/puppet/v3/environments') {
      const environments = Object.fromEntries(
        Object.keys(options.environments).map((e) => [e, { settings: { modulepath: [`/etc/puppetlabs/code/environments/${e}/modules`] } }]),
      );
      return json(res, 200, { search_paths: ['file:///etc/puppetlabs/code/environments'], environments });
    }
    // docs/task-format.md §3.1: the environment parameter.
    const env = url.searchParams.get('environment');
    if (env === null) return text(res, 400, 'An environment parameter must be specified');
    if (!/^\w+$/.test(env)) return text(res, 400, `The environment must be purely alphanumeric, not '${env}'`);
    const tasks = options.environments[env];
    if (!tasks) return text(res, 404, `Could not find environment '${env}'`);

    if (url.pathname === '/puppet/v3/tasks') {
      // docs/task-format.md §3.2: valid tasks only, private ones flagged.
      return json(
        res,
        200,
        tasks
          .filter((t) => !t.error)
          .map((t) => ({
            name: canonical(t),
            ...(options.listDescriptions === false
              ? {}
              : { private: t.metadata.private === true, description: typeof t.metadata.description === 'string' ? t.metadata.description : '' }),
            environment: [{ name: env, code_id: null }],
          })),
      );
    }
    if (parts.length === 6 && parts[3] === 'tasks') {
      // docs/task-format.md §3.3: the detail.
      const [module, taskName] = [parts[4], parts[5]];
      if (!tasks.some((t) => t.module === module)) return text(res, 404, `Could not find module '${module}'`);
      const t = tasks.find((x) => x.module === module && x.task === taskName);
      if (!t) return text(res, 404, `Could not find task '${taskName}'`);
      if (t.error) return json(res, 500, t.error);
      return json(res, 200, {
        metadata: t.metadata,
        name: canonical(t),
        files: t.files.map((f) => ({
          filename: f.implementation ? f.rel : `${f.module}/${f.mount}/${f.rel}`,
          sha256: sha256(f.content),
          size_bytes: Buffer.byteLength(f.content),
          uri: { path: fakeFileUriPath(f), params: { environment: env } },
        })),
      });
    }
    if (url.pathname.startsWith('/puppet/v3/file_content/')) {
      // docs/task-format.md §3.4: file content by its uri.path.
      const f = tasks.flatMap((t) => t.files).find((x) => fakeFileUriPath(x) === url.pathname);
      if (!f) return text(res, 404, `Not Found: Could not find file_content ${url.pathname.slice('/puppet/v3/file_content/'.length)}`);
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      return res.end(f.content);
    }
    return text(res, 404, 'Not Found');
  };

  const server: Server = options.tls
    ? createHttpsServer(
        {
          cert: readFileSync(options.tls.cert),
          key: readFileSync(options.tls.key),
          ca: readFileSync(options.tls.ca),
          requestCert: true,
          rejectUnauthorized: true,
        },
        handle,
      )
    : createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    options,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
