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
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../lib/errors';
import { serverStreamHandler, unaryHandler } from '../../lib/grpc-server';
import type { Logger } from '../../lib/logger';
import { DEFAULT_ENVIRONMENT, ENVIRONMENT_NAME, TASK_NAME, splitTaskName } from '../../lib/names';
import { SHA256_HEX, taskFilePathProblem } from '../../lib/task-file-path';
import type { Catalog } from './catalog';
import type { ScannedEnvironment } from './module-scanner';
import { decodePageToken, encodePageToken } from './page-token';
import { taskFileChunks } from './task-file-chunks';

/** Page size of ListTasks when the request gives 0. */
export const DEFAULT_PAGE_SIZE = 100;

/** Largest page of ListTasks; larger requests are served this many. */
export const MAX_PAGE_SIZE = 1000;

/** The environment a request names, scanned; INVALID_ARGUMENT for a bad name, NOT_FOUND for an unknown one. */
async function environmentOf(catalog: Catalog, requested: string): Promise<ScannedEnvironment> {
  const name = requested || DEFAULT_ENVIRONMENT;
  if (!ENVIRONMENT_NAME.test(name)) {
    throw new InvalidArgumentError(`environment '${name}' is not a valid environment name; expected ^[a-z][a-z0-9_]*$, for example 'production'`, [
      { field: 'environment', description: 'expected ^[a-z][a-z0-9_]*$' },
    ]);
  }
  const env = await catalog.environment(name);
  if (!env) {
    const known = await catalog.environmentNames();
    throw new NotFoundError('ENVIRONMENT_NOT_FOUND', `environment '${name}' not found; known environments: ${known.join(', ') || '(none)'}`, { environment: name });
  }
  return env;
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

/** The handlers of MetadataService over `catalog`. */
export function createMetadataService(catalog: Catalog, log: Logger): MetadataServiceServer {
  return {
    listEnvironments: unaryHandler(log, async (): Promise<ListEnvironmentsResponse> => {
      const envs = await catalog.environments();
      return { environments: envs.map((e) => ({ name: e.name, taskCount: e.tasks.length })) };
    }),

    listTasks: unaryHandler(log, async (req: ListTasksRequest): Promise<ListTasksResponse> => {
      if (req.pageSize < 0) {
        throw new InvalidArgumentError(`page_size ${req.pageSize} is negative; expected 0 (meaning ${DEFAULT_PAGE_SIZE}) to ${MAX_PAGE_SIZE}`, [
          { field: 'page_size', description: `expected 0 to ${MAX_PAGE_SIZE}` },
        ]);
      }
      const env = await environmentOf(catalog, req.environment);
      let after: string | undefined;
      if (req.pageToken) {
        const token = decodePageToken(req.pageToken);
        if (token.env !== env.name || token.includePrivate !== req.includePrivate) {
          throw new InvalidArgumentError(
            `page_token belongs to a listing of environment '${token.env}' with include_private=${token.includePrivate}; ` +
              `repeat those values or start again without a page_token`,
            [{ field: 'page_token', description: 'environment and include_private must be the same on every page' }],
          );
        }
        after = token.after;
      }
      const pageSize = Math.min(req.pageSize || DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
      const visible = env.tasks.filter((t) => req.includePrivate || !t.private);
      const rest = after === undefined ? visible : visible.filter((t) => t.name > after);
      const page = rest.slice(0, pageSize);
      const nextPageToken = rest.length > pageSize ? encodePageToken({ env: env.name, includePrivate: req.includePrivate, after: page[page.length - 1].name }) : '';
      return {
        tasks: page.map((t) => ({ name: t.name, description: t.description, private: t.private, error: t.error })),
        nextPageToken,
        totalSize: visible.length,
      };
    }),

    getTask: unaryHandler(log, async (req: GetTaskRequest): Promise<GetTaskResponse> => {
      const expected = "expected a canonical task name '<module>::<task>', or '<module>' for the module's init task";
      if (!TASK_NAME.test(req.task)) {
        throw new InvalidArgumentError(`task '${req.task}' is not a valid task name; ${expected}`, [{ field: 'task', description: expected }]);
      }
      const { module, task } = splitTaskName(req.task);
      if (req.task.endsWith('::init')) {
        // `<module>::init` is not a canonical name (task-spec.md §1 item 7).
        throw new InvalidArgumentError(`task '${req.task}' is not a canonical name; the init task of module '${module}' is named '${module}'`, [
          { field: 'task', description: expected },
        ]);
      }
      const env = await environmentOf(catalog, req.environment);
      const entry = env.byName.get(req.task);
      if (!entry) {
        throw new NotFoundError('TASK_NOT_FOUND', `task '${req.task}' not found in environment '${env.name}'`, { task: req.task, environment: env.name, module, name: task });
      }
      if (entry.error || !entry.task) {
        const kind = entry.error?.kind ?? 'puppet.tasks/invalid-metadata';
        throw new FailedPreconditionError('TASK_LOAD_FAILED', `task '${req.task}' in environment '${env.name}' fails to load: ${kind}: ${entry.error?.msg ?? 'unknown error'}`, {
          task: req.task,
          environment: env.name,
          kind,
        });
      }
      return { task: entry.task };
    }),

    readTaskFile: serverStreamHandler(log, async (req: ReadTaskFileRequest, call: ServerWritableStream<ReadTaskFileRequest, ReadTaskFileResponse>) => {
      const problem = taskFilePathProblem(req.path);
      if (problem) {
        throw new InvalidArgumentError(`path '${req.path}' ${problem}; expected a task file path as listed in Task.files, for example 'acme/tasks/restart.sh'`, [
          { field: 'path', description: `expected <module>/<mount>/<file>; this one ${problem}` },
        ]);
      }
      if (req.sha256 && !SHA256_HEX.test(req.sha256)) {
        throw new InvalidArgumentError(`sha256 '${req.sha256}' is not 64 lowercase hex characters`, [{ field: 'sha256', description: 'expected 64 lowercase hex characters, or empty' }]);
      }
      const env = await environmentOf(catalog, req.environment);
      // Only files some loaded task lists are served: never any other file of the environmentpath.
      const absPath = env.files.get(req.path);
      if (!absPath) {
        throw new NotFoundError('TASK_FILE_NOT_FOUND', `'${req.path}' is not a file of any task in environment '${env.name}'`, { path: req.path, environment: env.name });
      }
      for await (const chunk of taskFileChunks(absPath, req.path, req.sha256)) {
        if (!(await write(call, chunk))) return; // the caller went away
      }
    }),
  };
}
