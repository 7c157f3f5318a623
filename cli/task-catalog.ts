import { status } from '@grpc/grpc-js';
import type { TaskSummary } from '../gen/baton/v1/metadata_service';
import type { Task } from '../gen/baton/v1/task';
import { isServiceError } from '../lib/errors';
import { CliError, EXIT } from './cli-error';
import { closestNames } from './closest-names';
import type { Clients } from './connection';

/** Tasks per ListTasks page: the service's maximum, so a listing is one request for up to 5,000 tasks. */
const LIST_PAGE_SIZE = 5000;

/**
 * Every task of an environment with its description. Choria's `--detail` made one metadata
 * request per task (docs/choria-compat.md §5.1); ListTasks returns the descriptions, so this is one
 * request unless the environment holds more than LIST_PAGE_SIZE tasks.
 */
export async function listTasks(clients: Clients, environment: string, includePrivate = false): Promise<TaskSummary[]> {
  const tasks: TaskSummary[] = [];
  let pageToken = '';
  do {
    const page = await clients.call('metadata', (c) => c.listTasks, { environment, pageSize: LIST_PAGE_SIZE, pageToken, includePrivate });
    tasks.push(...page.tasks);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return tasks;
}

/** One task's metadata; an unknown task is one line naming the closest known names. */
export async function getTask(clients: Clients, environment: string, name: string): Promise<Task> {
  try {
    const { task } = await clients.call('metadata', (c) => c.getTask, { environment, task: name });
    if (!task) throw new CliError(`the metadata service returned no task for '${name}'`, EXIT.FAILED);
    return task;
  } catch (err) {
    if (!isServiceError(err) || err.code !== status.NOT_FOUND) throw err;
    let known: string[] = [];
    try {
      known = (await listTasks(clients, environment, true)).map((t) => t.name);
    } catch {
      // An unknown environment is NOT_FOUND too: the service's own words say which.
      throw new CliError(err.details, EXIT.USAGE);
    }
    const close = closestNames(name, known);
    const hint = close.length > 0 ? `; did you mean ${close.join(', ')}?` : "; 'baton tasks list' shows the known tasks";
    throw new CliError(`unknown task '${name}': not found in the ${environment} environment${hint}`, EXIT.USAGE);
  }
}
