import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Agent } from '../../agent/agent';
import {
  DEFAULT_HEARTBEAT_INTERVAL_S,
  DEFAULT_RETENTION_S,
  DEFAULT_RETENTION_SWEEP_INTERVAL_S,
  STATE_DIR_MODE,
  type ResolvedAgentOptions,
} from '../../agent/agent-options';
import { DEFAULT_FACTS_POLL_INTERVAL_S } from '../../agent/facts-source';
import { DEFAULT_MAX_CONCURRENT_TASKS, DEFAULT_MAX_OUTPUT_BYTES } from '../../agent/task-runner';
import { createLogger } from '../../lib/logger';
import { serveWorker } from './worker-process';

/**
 * A benchmark worker hosting many real agents in one process (forked by bench/run-bench.ts):
 * each is the agent's own `Agent` class — connection, file cache, spool, TaskRunner and its
 * /bin/sh wrapper, so every task is a real process spawn — with its own identity and its own
 * cache and spool directories. Only the process is shared (and, through grpc-js's channel
 * pool, the HTTP/2 connection to the scheduler). Requests:
 * - `start` { schedulerAddress, stateDir, identities }: starts those agents and resolves once
 *   every one has been welcomed;
 * - `stop`: stops every agent (their tasks are left alone) and exits.
 */

/** How long `start` waits for every agent's Welcome, in ms. */
const CONNECT_DEADLINE_MS = 120_000;

const log = createLogger('agent-fleet', process.env.BATON_BENCH_AGENT_LOG_LEVEL ?? 'error');
const agents: Agent[] = [];
const connected = new Set<string>();
let onConnected: (() => void) | undefined;

function agentOptions(schedulerAddress: string, dir: string, identity: string): ResolvedAgentOptions {
  return {
    identity,
    schedulerAddress,
    cacheDir: join(dir, 'cache'),
    spoolDir: join(dir, 'spool'),
    classes: ['baton_bench'],
    factsPollIntervalS: DEFAULT_FACTS_POLL_INTERVAL_S,
    schedulerTimeoutS: 0,
    heartbeatIntervalS: DEFAULT_HEARTBEAT_INTERVAL_S,
    maxConcurrentTasks: DEFAULT_MAX_CONCURRENT_TASKS,
    maxOutputBytes: DEFAULT_MAX_OUTPUT_BYTES,
    retentionS: DEFAULT_RETENTION_S,
    retentionSweepIntervalS: DEFAULT_RETENTION_SWEEP_INTERVAL_S,
    logLevel: 'error',
    tls: {},
  };
}

async function start(msg: Record<string, unknown>): Promise<number> {
  const schedulerAddress = String(msg.schedulerAddress);
  const stateDir = String(msg.stateDir);
  const identities = msg.identities as string[];
  const want = new Set(identities);
  for (const identity of identities) {
    const dir = join(stateDir, identity);
    for (const sub of ['cache', 'spool']) mkdirSync(join(dir, sub), { recursive: true, mode: STATE_DIR_MODE });
    const agent = new Agent(agentOptions(schedulerAddress, dir, identity), {
      log,
      announce: () => {
        connected.add(identity);
        onConnected?.();
      },
    });
    agents.push(agent);
    await agent.start();
  }
  const all = () => [...want].every((i) => connected.has(i));
  if (!all()) {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${[...want].filter((i) => !connected.has(i)).length} of ${want.size} agents not welcomed within ${CONNECT_DEADLINE_MS} ms`)),
        CONNECT_DEADLINE_MS,
      );
      onConnected = () => {
        if (!all()) return;
        clearTimeout(timer);
        onConnected = undefined;
        resolve();
      };
    });
  }
  return agents.length;
}

serveWorker({ start }, async () => {
  await Promise.all(agents.map((a) => a.stop()));
});
