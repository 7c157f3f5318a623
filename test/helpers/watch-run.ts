import type { NodeState } from '../../gen/baton/v1/run';
import type { SchedulerServiceClient, WatchRunResponse } from '../../gen/baton/v1/scheduler_service';

/** The node results of a run's events as WatchRun relays them until the run is final, in order: [host, state]. */
export async function watchedNodeStates(client: SchedulerServiceClient, taskId: string): Promise<Array<[string, NodeState]>> {
  const stream = client.watchRun({ taskId, resumeToken: '' });
  const seen: Array<[string, NodeState]> = [];
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (m: WatchRunResponse) => {
      const e = m.event?.event;
      if (e?.$case === 'nodeResult') seen.push([e.value.host, e.value.state]);
    });
    stream.on('error', reject);
    stream.on('end', resolve);
  });
  return seen;
}
