import type { ServerWritableStream } from '@grpc/grpc-js';
import type {
  GetTaskRequest,
  GetTaskResponse,
  ListEnvironmentsResponse,
  ListTasksRequest,
  ListTasksResponse,
  MetadataServiceServer,
  ReadTaskFileRequest,
  ReadTaskFileResponse,
} from '../../gen/baton/v1/metadata_service';
import { InvalidArgumentError } from '../../lib/errors';
import { serverStreamHandler, unaryHandler } from '../../lib/grpc-server';
import type { Logger } from '../../lib/logger';
import { ANY_ROLE, type MethodRoles } from '../../lib/method-roles';
import { DEFAULT_ENVIRONMENT, ENVIRONMENT_NAME, TASK_NAME, splitTaskName } from '../../lib/names';
import { SHA256_HEX, taskFilePathProblem } from '../../lib/task-file-path';
import { Catalog } from './catalog';
import { ModulepathSource } from './modulepath-source';
import { pageTokens } from '../../lib/page-token';
import type { TaskSource } from './task-source';
import { quote } from '../../lib/quote';

/** Page size of ListTasks when the request gives 0. */
export const DEFAULT_PAGE_SIZE = 100;

/**
 * Largest page of ListTasks; larger requests are served this many. Big enough that a site's
 * whole catalog with descriptions comes in one call (Choria needed one request per task), small
 * enough to stay well under gRPC's 4 MiB message limit (~150 bytes a task).
 */
export const MAX_PAGE_SIZE = 5000;

/** ListTasks page tokens: the last task name sent, bound to the listing's environment and include_private. */
const TASK_PAGE_TOKENS = pageTokens<string>({
  method: 'ListTasks',
  listingFields: 'environment and include_private',
  isPosition: (v): v is string => typeof v === 'string',
});

/** The environment a request names, `production` when empty; INVALID_ARGUMENT for a bad name. */
function environmentName(requested: string): string {
  const name = requested || DEFAULT_ENVIRONMENT;
  if (!ENVIRONMENT_NAME.test(name)) {
    throw new InvalidArgumentError(`environment ${quote(name)} is not a valid environment name; expected ^[a-z][a-z0-9_]*$, for example 'production'`, [
      { field: 'environment', description: 'expected ^[a-z][a-z0-9_]*$' },
    ]);
  }
  return name;
}

/** Writes one message, waiting for the stream to drain when its buffer is full; false when the call is gone. */
async function write<T>(call: ServerWritableStream<unknown, T>, message: T): Promise<boolean> {
  if (call.cancelled) return false;
  if (call.write(message)) return true;
  return new Promise<boolean>((resolve) => {
    const done = (ok: boolean) => () => {
      call.off('drain', onDrain);
      call.off('cancelled', onGone);
      call.off('close', onGone);
      resolve(ok);
    };
    const onDrain = done(true);
    const onGone = done(false);
    call.once('drain', onDrain);
    call.once('cancelled', onGone);
    call.once('close', onGone);
  });
}

/**
 * Who may call the MetadataService (lib/method-roles.ts): any certificate with a Baton
 * role; agents download task files, operators list tasks, the scheduler reads metadata.
 */
export const METADATA_SERVICE_ROLES: MethodRoles = { default: ANY_ROLE };

/** The handlers of MetadataService over `source` (a Catalog is served through a ModulepathSource). */
export function createMetadataService(from: TaskSource | Catalog, log: Logger): MetadataServiceServer {
  const source = from instanceof Catalog ? new ModulepathSource(from) : from;
  return {
    listEnvironments: unaryHandler(log, async (): Promise<ListEnvironmentsResponse> => {
      return { environments: await source.listEnvironments() };
    }),

    listTasks: unaryHandler(log, async (req: ListTasksRequest): Promise<ListTasksResponse> => {
      if (req.pageSize < 0) {
        throw new InvalidArgumentError(`page_size ${req.pageSize} is negative; expected 0 (meaning ${DEFAULT_PAGE_SIZE}) to ${MAX_PAGE_SIZE}`, [
          { field: 'page_size', description: `expected 0 to ${MAX_PAGE_SIZE}` },
        ]);
      }
      const environment = environmentName(req.environment);
      const listing = JSON.stringify([environment, req.includePrivate]);
      let after: string | undefined;
      if (req.pageToken) {
        after = TASK_PAGE_TOKENS.decode(req.pageToken, listing);
      }
      const pageSize = Math.min(req.pageSize || DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
      const tasks = await source.listTasks(environment);
      const visible = tasks.filter((t) => req.includePrivate || !t.private);
      const rest = after === undefined ? visible : visible.filter((t) => t.name > after);
      const page = rest.slice(0, pageSize);
      const nextPageToken = rest.length > pageSize ? TASK_PAGE_TOKENS.encode(page[page.length - 1].name, listing) : '';
      return {
        tasks: page.map((t) => ({ name: t.name, description: t.description, private: t.private, error: t.error })),
        nextPageToken,
        totalSize: visible.length,
      };
    }),

    getTask: unaryHandler(log, async (req: GetTaskRequest): Promise<GetTaskResponse> => {
      const expected = "expected a canonical task name '<module>::<task>', or '<module>' for the module's init task";
      if (!TASK_NAME.test(req.task)) {
        throw new InvalidArgumentError(`task ${quote(req.task)} is not a valid task name; ${expected}`, [{ field: 'task', description: expected }]);
      }
      const { module } = splitTaskName(req.task);
      if (req.task.endsWith('::init')) {
        // `<module>::init` is not a canonical name (docs/task-format.md §1 item 7).
        throw new InvalidArgumentError(`task ${quote(req.task)} is not a canonical name; the init task of module '${module}' is named '${module}'`, [
          { field: 'task', description: expected },
        ]);
      }
      return { task: await source.getTask(environmentName(req.environment), req.task) };
    }),

    readTaskFile: serverStreamHandler(log, async (req: ReadTaskFileRequest, call: ServerWritableStream<ReadTaskFileRequest, ReadTaskFileResponse>) => {
      const problem = taskFilePathProblem(req.path);
      if (problem) {
        throw new InvalidArgumentError(
          `path ${quote(req.path)} ${problem}; expected a task file path as listed in Task.files, for example 'acme/tasks/restart.sh'`,
          [{ field: 'path', description: `expected <module>/<mount>/<file>; this one ${problem}` }],
        );
      }
      if (req.sha256 && !SHA256_HEX.test(req.sha256)) {
        throw new InvalidArgumentError(`sha256 ${quote(req.sha256)} is not 64 lowercase hex characters`, [
          { field: 'sha256', description: 'expected 64 lowercase hex characters, or empty' },
        ]);
      }
      for await (const chunk of source.readTaskFile(environmentName(req.environment), req.path, req.sha256)) {
        if (!(await write(call, chunk))) return; // the caller went away
      }
    }),
  };
}
