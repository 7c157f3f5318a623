import type { Environment, ReadTaskFileResponse } from '../../gen/baton/v1/metadata_service';
import type { Task } from '../../gen/baton/v1/task';
import { FailedPreconditionError, NotFoundError } from '../../lib/errors';
import { splitTaskName } from '../../lib/names';
import type { Catalog } from './catalog';
import type { ScannedEnvironment } from './module-scanner';
import { taskFileChunks } from './task-file-chunks';
import { taskLoadFailedMessage, type TaskListing, type TaskSource } from './task-source';

/** Tasks from a local environmentpath, `<environmentpath>/<env>/modules/` (docs/task-format.md §1). */
export class ModulepathSource implements TaskSource {
  constructor(private readonly catalog: Catalog) {}

  /** The scanned environment `name`; NOT_FOUND naming it and the known ones when there is none. */
  private async environment(name: string): Promise<ScannedEnvironment> {
    const env = await this.catalog.environment(name);
    if (env) return env;
    const known = await this.catalog.environmentNames();
    throw new NotFoundError('ENVIRONMENT_NOT_FOUND', `environment '${name}' not found; known environments: ${known.join(', ') || '(none)'}`, {
      environment: name,
    });
  }

  async listEnvironments(): Promise<Environment[]> {
    const envs = await this.catalog.environments();
    return envs.map((e) => ({ name: e.name, taskCount: e.tasks.length }));
  }

  async listTasks(environment: string): Promise<readonly TaskListing[]> {
    // The scan's own array: no copy, so a warm listing costs only the page it returns.
    return (await this.environment(environment)).tasks;
  }

  async getTask(environment: string, name: string): Promise<Task> {
    const env = await this.environment(environment);
    const entry = env.byName.get(name);
    if (!entry) {
      const { module, task } = splitTaskName(name);
      throw new NotFoundError('TASK_NOT_FOUND', `task '${name}' not found in environment '${env.name}'`, {
        task: name,
        environment: env.name,
        module,
        name: task,
      });
    }
    if (entry.error || !entry.task) {
      const error = entry.error ?? { kind: 'puppet.tasks/invalid-metadata', msg: 'unknown error', details: {} };
      throw new FailedPreconditionError('TASK_LOAD_FAILED', taskLoadFailedMessage(name, env.name, error), {
        task: name,
        environment: env.name,
        kind: error.kind,
      });
    }
    return entry.task;
  }

  async *readTaskFile(environment: string, path: string, expectedSha256: string): AsyncIterable<ReadTaskFileResponse> {
    const env = await this.environment(environment);
    // Only files some loaded task lists are served: never any other file of the environmentpath.
    const absPath = env.files.get(path);
    if (!absPath) {
      throw new NotFoundError('TASK_FILE_NOT_FOUND', `'${path}' is not a file of any task in environment '${env.name}'`, { path, environment: env.name });
    }
    yield* taskFileChunks(absPath, path, expectedSha256);
  }
}
