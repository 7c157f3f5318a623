import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadPackageDefinition, status, type Server, type ServerDuplexStream, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type DescriptorProto, type FileDescriptorProto } from '@bufbuild/protobuf/wkt';
import type { Logger } from './logger';
import { packageRoot } from './package-root';

/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha) that serves the true descriptors of
 * Baton's proto files. @grpc/reflection 1.0.4 rebuilds descriptors through proto-loader, which
 * merges every file of a package into one `<package>.proto` with `dependency: []`; a client then
 * cannot resolve google.protobuf.Timestamp or Struct and `buf curl` fails with "failed to find
 * service named ... in schema" (grpc/grpc-node#3034, #3018; docs/toolchain.md "Server reflection").
 * Here every file is served byte for byte as `buf build` compiled it, under its own name and with
 * its imports.
 */

/** One descriptor set reflection serves. */
export interface ProtoDescriptorSet {
  /** What `buf build` compiles, relative to the package root. */
  input: string;
  /** Only these paths of `input` (relative to the package root), when given. */
  paths?: string[];
  /** Put before every file name of the set, so a file has its canonical name (`grpc/health/v1/health.proto`) whatever folder it ships in. */
  namePrefix?: string;
  /** Where `npm run build` writes the compiled set (scripts/build-descriptors.mjs). */
  file: string;
}

/**
 * The descriptor sets reflection serves: Baton's module (proto/ and the well-known types it
 * imports), grpc.health.v1 and grpc.reflection.v1/v1alpha, under the names their own projects
 * give them, so a client resolves every service that `list_services` names.
 */
export const PROTO_DESCRIPTOR_SETS: readonly ProtoDescriptorSet[] = [
  { input: '.', file: join('dist', 'proto', 'baton.binpb') },
  // grpc-health-check ships health/v1/health.proto; gRPC's canonical name starts with grpc/.
  { input: join('node_modules', 'grpc-health-check', 'proto'), namePrefix: 'grpc/', file: join('dist', 'proto', 'health.binpb') },
  // The folder also holds @grpc/reflection's test samples, which do not compile.
  {
    input: join('node_modules', '@grpc', 'reflection', 'build', 'proto'),
    paths: [join('node_modules', '@grpc', 'reflection', 'build', 'proto', 'grpc', 'reflection')],
    file: join('dist', 'proto', 'reflection.binpb'),
  },
];

/** Most time a `buf build` may take, in ms. */
const BUF_BUILD_TIMEOUT_MS = 60_000;

/** The reflection protos shipped with @grpc/reflection (same messages in v1 and v1alpha). */
const REFLECTION_PROTOS = ['v1', 'v1alpha'].map((v) => ({
  version: v,
  file: join(packageRoot(), 'node_modules', '@grpc', 'reflection', 'build', 'proto', 'grpc', 'reflection', v, 'reflection.proto'),
}));

/** Compiles `input` (relative to the package root; only `paths` of it when given) with `buf build` into a FileDescriptorSet. */
export function buildDescriptorSet(input: string, paths: readonly string[] = []): Promise<Uint8Array> {
  const root = packageRoot();
  const buf = join(root, 'node_modules', '.bin', 'buf');
  if (!existsSync(buf)) return Promise.reject(new Error(`no buf at ${buf} to compile ${input}; run npm run build where dev dependencies are installed`));
  return new Promise((resolve, reject) => {
    execFile(
      buf,
      ['build', input, ...paths.flatMap((p) => ['--path', p]), '--as-file-descriptor-set', '-o', '-'],
      { cwd: root, encoding: 'buffer', maxBuffer: 64 * 1024 * 1024, timeout: BUF_BUILD_TIMEOUT_MS },
      (err, stdout, stderr) => (err ? reject(new Error(`buf build ${input} failed: ${stderr.toString().trim() || err.message}`)) : resolve(stdout)),
    );
  });
}

/**
 * The compiled descriptor sets. Where buf is installed (a development tree), `buf build` runs now,
 * so the answer always matches proto/ as it is; elsewhere (a production install without dev
 * dependencies) the files `npm run build` wrote are read.
 */
export async function loadProtoDescriptorSets(): Promise<Array<{ set: ProtoDescriptorSet; bytes: Uint8Array }>> {
  const root = packageRoot();
  const haveBuf = existsSync(join(root, 'node_modules', '.bin', 'buf'));
  return Promise.all(
    PROTO_DESCRIPTOR_SETS.map(async (set) => {
      if (haveBuf) return { set, bytes: await buildDescriptorSet(set.input, set.paths) };
      const bytes = await readFile(join(root, set.file)).catch(() => {
        throw new Error(`no compiled descriptors at ${set.file}; build with npm run build`);
      });
      return { set, bytes };
    }),
  );
}

/** Descriptors of proto files indexed the way reflection requests ask for them. */
export class DescriptorIndex {
  private readonly files = new Map<string, { proto: FileDescriptorProto; bytes: Uint8Array }>();
  private readonly symbols = new Map<string, string>();

  /** Adds files; a file name already present is kept as first added. */
  add(files: FileDescriptorProto[]): void {
    for (const file of files) {
      if (this.files.has(file.name)) continue;
      this.files.set(file.name, { proto: file, bytes: toBinary(FileDescriptorProtoSchema, file) });
      const prefix = file.package ? `${file.package}.` : '';
      const addMessage = (scope: string, m: DescriptorProto): void => {
        const name = `${scope}${m.name}`;
        this.symbols.set(name, file.name);
        for (const f of m.field) this.symbols.set(`${name}.${f.name}`, file.name);
        for (const e of m.enumType) this.symbols.set(`${name}.${e.name}`, file.name);
        for (const n of m.nestedType) addMessage(`${name}.`, n);
      };
      for (const m of file.messageType) addMessage(prefix, m);
      for (const e of file.enumType) {
        this.symbols.set(`${prefix}${e.name}`, file.name);
        // Enum values are scoped like siblings of their enum (protobuf scoping rules).
        for (const v of e.value) this.symbols.set(`${prefix}${v.name}`, file.name);
      }
      for (const s of file.service) {
        this.symbols.set(`${prefix}${s.name}`, file.name);
        for (const m of s.method) this.symbols.set(`${prefix}${s.name}.${m.name}`, file.name);
      }
    }
  }

  /**
   * Adds the files of a `FileDescriptorSet` (the output of `buf build --as-file-descriptor-set`),
   * each named `namePrefix` + its name, and so are its imports of files of the same set.
   */
  addSet(bytes: Uint8Array, namePrefix = ''): void {
    const files = fromBinary(FileDescriptorSetSchema, bytes).file;
    if (namePrefix) {
      const own = new Set(files.map((f) => f.name));
      for (const f of files) {
        f.name = namePrefix + f.name;
        f.dependency = f.dependency.map((d) => (own.has(d) ? namePrefix + d : d));
      }
    }
    this.add(files);
  }

  /** The encoded file `name` followed by every file it imports, transitively; undefined if unknown. */
  fileWithImports(name: string): Uint8Array[] | undefined {
    if (!this.files.has(name)) return undefined;
    const order: string[] = [];
    const visit = (n: string): void => {
      if (order.includes(n) || !this.files.has(n)) return;
      order.push(n);
      for (const dep of this.files.get(n)!.proto.dependency) visit(dep);
    };
    visit(name);
    return order.map((n) => this.files.get(n)!.bytes);
  }

  /** The file that declares the fully-qualified `symbol` (service, method, message, field, enum), with its imports. */
  fileContainingSymbol(symbol: string): Uint8Array[] | undefined {
    const file = this.symbols.get(symbol.replace(/^\./, ''));
    return file === undefined ? undefined : this.fileWithImports(file);
  }
}

/** One request on the reflection stream, as proto-loader decodes it (oneofs: true). */
interface ReflectionRequest {
  host?: string;
  messageRequest?: 'fileByFilename' | 'fileContainingSymbol' | 'fileContainingExtension' | 'allExtensionNumbersOfType' | 'listServices';
  fileByFilename?: string;
  fileContainingSymbol?: string;
  fileContainingExtension?: { containingType?: string; extensionNumber?: number };
  allExtensionNumbersOfType?: string;
}

let sharedIndex: Promise<DescriptorIndex> | undefined;

/** Builds the descriptor index once per process. */
function descriptorIndex(): Promise<DescriptorIndex> {
  sharedIndex ??= (async () => {
    const index = new DescriptorIndex();
    for (const { set, bytes } of await loadProtoDescriptorSets()) index.addSet(bytes, set.namePrefix);
    return index;
  })();
  // A failed build is retried by the next request rather than cached forever.
  sharedIndex.catch(() => (sharedIndex = undefined));
  return sharedIndex;
}

/**
 * Adds grpc.reflection.v1 and v1alpha ServerReflection to `server`. `services` are the full
 * names listed by `list_services` (the services this server really serves). The descriptors
 * load on the first request, so a server that is never reflected on pays nothing.
 */
export function addServerReflection(server: Server, services: string[], log: Logger): void {
  for (const r of REFLECTION_PROTOS) {
    const pkg = loadPackageDefinition(loadSync(r.file, { oneofs: true })) as unknown as {
      grpc: { reflection: Record<string, { ServerReflection: { service: ServiceDefinition } }> };
    };
    server.addService(pkg.grpc.reflection[r.version].ServerReflection.service, {
      ServerReflectionInfo: (call: ServerDuplexStream<ReflectionRequest, unknown>) => {
        // Answers go out in request order, each after the descriptors are loaded.
        let queue = Promise.resolve();
        call.on('data', (request: ReflectionRequest) => {
          queue = queue.then(async () => {
            const response = await answer(request, services).catch((err: unknown) => {
              log.warn({ err }, 'reflection descriptors unavailable');
              return { errorResponse: { errorCode: status.INTERNAL, errorMessage: `reflection unavailable: ${(err as Error).message}` } };
            });
            call.write({ validHost: request.host ?? '', originalRequest: request, ...response });
          });
        });
        call.on('end', () => void queue.then(() => call.end()));
        call.on('error', () => undefined);
      },
    });
  }
}

/** The response fields for one reflection request. */
async function answer(request: ReflectionRequest, services: string[]): Promise<Record<string, unknown>> {
  const notFound = (what: string) => ({ errorResponse: { errorCode: status.NOT_FOUND, errorMessage: what } });
  const files = (found: Uint8Array[] | undefined, what: string) =>
    found ? { fileDescriptorResponse: { fileDescriptorProto: found.map((b) => Buffer.from(b)) } } : notFound(what);
  switch (request.messageRequest) {
    case 'listServices':
      return { listServicesResponse: { service: services.map((name) => ({ name })) } };
    case 'fileByFilename':
      return files((await descriptorIndex()).fileWithImports(request.fileByFilename ?? ''), `file not found: ${request.fileByFilename}`);
    case 'fileContainingSymbol':
      return files((await descriptorIndex()).fileContainingSymbol(request.fileContainingSymbol ?? ''), `symbol not found: ${request.fileContainingSymbol}`);
    case 'fileContainingExtension':
      // Baton's API declares no extensions.
      return notFound(`extension not found: ${request.fileContainingExtension?.containingType} ${request.fileContainingExtension?.extensionNumber}`);
    case 'allExtensionNumbersOfType':
      return { allExtensionNumbersResponse: { baseTypeName: request.allExtensionNumbersOfType ?? '', extensionNumber: [] } };
    default:
      return { errorResponse: { errorCode: status.UNIMPLEMENTED, errorMessage: 'unknown reflection request' } };
  }
}
