import assert from 'node:assert/strict';
import type { StatusObject } from '@grpc/grpc-js';
import { GetTaskRequest } from '../../gen/baton/v1/metadata_service';
import { Filter } from '../../gen/baton/v1/filter';
import { DiscoverNodesRequest, RunTaskRequest, type SchedulerServiceClient } from '../../gen/baton/v1/scheduler_service';
import { unary } from '../../lib/grpc-client';
import type { TlsFiles } from '../../lib/tls';
import { rawCall, rawClient } from './raw-call';

/**
 * A normal operator and an adversary beside it, for the adversary test and its benchmark: the
 * operator runs demo::echo on node1 and node2; the adversary sends bad requests, encoded
 * beforehand, one after another on each of its connections.
 */

/** One request of the adversary: where it goes and its bytes. */
export interface Attack {
  service: 'scheduler' | 'metadata';
  path: string;
  request: Uint8Array;
}

/** DiscoverNodes's path. */
export const DISCOVER = '/baton.v1.SchedulerService/DiscoverNodes';

/** RunTask's path. */
export const RUN_TASK = '/baton.v1.SchedulerService/RunTask';

/** A DiscoverNodes request of `filter`, encoded. */
export const discoverRequest = (filter: Partial<Filter>): Uint8Array =>
  DiscoverNodesRequest.encode(DiscoverNodesRequest.fromPartial({ filter: Filter.fromPartial(filter) })).finish();

/** A RunTask request of demo::echo on node1, with `p` over it, encoded. */
export const runTaskRequest = (p: Partial<RunTaskRequest>): Uint8Array =>
  RunTaskRequest.encode(RunTaskRequest.fromPartial({ task: 'demo::echo', inputJson: '{"message":"hi"}', filter: { identities: ['node1'] }, ...p })).finish();

/**
 * The adversary's requests: a 20,000-character task name (the one that stalled the scheduler's
 * connection to the metadata service), a task that does not exist, a 1 MiB filter term, a
 * pathological regex, 20,000 nested parentheses.
 */
export function badRequests(): Attack[] {
  return [
    { service: 'scheduler', path: RUN_TASK, request: runTaskRequest({ task: 'a'.repeat(20_000) }) },
    {
      service: 'metadata',
      path: '/baton.v1.MetadataService/GetTask',
      request: GetTaskRequest.encode({ task: 'a'.repeat(200), environment: 'production' }).finish(),
    },
    { service: 'scheduler', path: DISCOVER, request: discoverRequest({ identities: ['x'.repeat(1024 * 1024)] }) },
    { service: 'scheduler', path: DISCOVER, request: discoverRequest({ identities: ['/^(a|a)*$/'] }) },
    { service: 'scheduler', path: DISCOVER, request: discoverRequest({ compound: [`${'('.repeat(20_000)}role=web${')'.repeat(20_000)}`] }) },
  ];
}

/** The operator's run of demo::echo on node1 and node2: its duration in ms; throws unless both nodes succeeded. */
export async function operatorRun(client: SchedulerServiceClient): Promise<number> {
  const start = performance.now();
  const res = await unary(
    client,
    client.runTask,
    RunTaskRequest.fromPartial({ task: 'demo::echo', inputJson: '{"message":"hi"}', filter: { identities: ['node1', 'node2'] } }),
    { deadlineMs: 30_000 },
  );
  assert.equal(res.results.length, 2, 'both nodes answered');
  assert.ok(
    res.results.every((r) => r.exitcode === 0),
    JSON.stringify(res.results.map((r) => r.statusmsg)),
  );
  return performance.now() - start;
}

/**
 * Sends `list` round and round, each request as soon as the last is answered, on each of `lanes`
 * connections (one per service, as a client program holds), while `going()`; resolves with the
 * answers' codes once every lane has stopped.
 */
export async function adversary(
  addresses: Record<Attack['service'], string>,
  tls: TlsFiles,
  list: Attack[],
  going: () => boolean,
  lanes = 1,
  onAnswer?: (answer: StatusObject) => void,
): Promise<number[]> {
  const codes: number[] = [];
  const channels = Array.from({ length: lanes }, () => ({ scheduler: rawClient(addresses.scheduler, tls), metadata: rawClient(addresses.metadata, tls) }));
  try {
    await Promise.all(
      channels.map(async (channel) => {
        for (let i = 0; going(); i = (i + 1) % list.length) {
          const a = list[i];
          const { status: answer } = await rawCall(addresses[a.service], tls, a.path, 'unary', a.request, 10_000, channel[a.service]);
          codes.push(answer.code);
          onAnswer?.(answer);
        }
      }),
    );
  } finally {
    for (const c of channels) for (const client of Object.values(c)) client.close();
  }
  return codes;
}
