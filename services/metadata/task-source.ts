import type { Environment, ReadTaskFileResponse } from '../../gen/baton/v1/metadata_service';
import type { Task, TaskError } from '../../gen/baton/v1/task';

/**
 * Where MetadataService gets its tasks from: a local modulepath
 * (ModulepathSource) or an existing Puppet Server's `/puppet/v3/tasks` API
 * (PuppetServerSource). The service validates requests and pages listings; a source only
 * answers for well-formed names and throws lib/errors domain errors: NotFoundError
 * `ENVIRONMENT_NOT_FOUND` / `TASK_NOT_FOUND` / `TASK_FILE_NOT_FOUND` naming what is missing,
 * FailedPreconditionError `TASK_LOAD_FAILED` / `TASK_FILE_CHANGED`, UnavailableError.
 */

/** One line of a listing: what ListTasks returns per task. */
export interface TaskListing {
  name: string;
  description: string;
  private: boolean;
  /** Set when the task fails to load. */
  error?: TaskError;
}

/** A source of tasks for MetadataService. */
export interface TaskSource {
  /** Every environment with its task count, sorted by name. */
  listEnvironments(): Promise<Environment[]>;
  /** Every task of `environment`, private and broken ones included, sorted by name. */
  listTasks(environment: string): Promise<readonly TaskListing[]>;
  /** One loaded task by canonical name. */
  getTask(environment: string, name: string): Promise<Task>;
  /**
   * The chunks of one task file (task-file-chunks.ts rules): the first carries size and
   * sha256 of exactly the bytes that follow, and a file that changes under the stream ends
   * it with FAILED_PRECONDITION rather than a clean end.
   */
  readTaskFile(environment: string, path: string, expectedSha256: string): AsyncIterable<ReadTaskFileResponse>;
}

/** The FAILED_PRECONDITION message of a task that exists but fails to load, shared by the sources. */
export function taskLoadFailedMessage(task: string, environment: string, error: TaskError): string {
  return `task '${task}' in environment '${environment}' fails to load: ${error.kind}: ${error.msg}`;
}
