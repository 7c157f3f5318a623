import { loadavg } from 'node:os';
import { SchedulerServiceClient } from '../gen/baton/v1/scheduler_service';
import { DevStack } from '../cli/dev-stack';
import { makeClient } from '../lib/grpc-client';
import { adversary, badRequests, operatorRun } from '../test/helpers/adversary';

/**
 * An adversary beside a normal operator, on a whole stack with mutual TLS: operator `alice`
 * runs demo::echo on two agents, alone, then while operator `mallory` sends one bad request
 * after another (each as soon as the last is answered, never waiting a retry delay) from the
 * same process. ROUNDS pairs (alone, attacked) alternate, so a change in the machine's load
 * hits both alike. Goals: the median attacked run at most GOAL_RATIO times the median run
 * alone, and every run succeeding. Prints each pair, the medians, the adversary's answers by
 * gRPC code and the load average; exits non-zero when a goal is missed.
 * Run: `npm run build && npm run bench -- adversary-bench` (BATON_BENCH_ROUNDS, default 9).
 */

const ROUNDS = Number(process.env.BATON_BENCH_ROUNDS ?? 9);
const GOAL_RATIO = 2;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const stack = await DevStack.start({ agents: 2, tls: true, logLevel: 'error' });
  try {
    const tls = stack.tls;
    if (!tls) throw new Error('the stack runs with TLS');
    const client = makeClient(SchedulerServiceClient, stack.addresses.scheduler, tls.operator('alice'));
    let failures = 0;
    const run = () =>
      operatorRun(client).catch((err: unknown) => {
        failures += 1;
        console.log(`a run failed: ${String(err)}`);
        return Number.NaN;
      });
    for (let i = 0; i < 3; i++) await run(); // warm up
    const alone: number[] = [];
    const attacked: number[] = [];
    const codes: number[] = [];
    let attackMs = 0;
    for (let round = 0; round < ROUNDS; round++) {
      alone.push(await run());
      let attacking = true;
      const t0 = performance.now();
      const running = adversary(stack.addresses, tls.operator('mallory'), badRequests(), () => attacking);
      attacked.push(await run());
      attacking = false;
      codes.push(...(await running));
      attackMs += performance.now() - t0;
      console.log(
        `round ${round + 1}: alone ${alone[round].toFixed(0)} ms, attacked ${attacked[round].toFixed(0)} ms (${(attacked[round] / alone[round]).toFixed(2)}x)`,
      );
    }
    client.close();
    const byCode: Record<string, number> = {};
    for (const c of codes) byCode[c] = (byCode[c] ?? 0) + 1;
    const ratio = median(attacked) / median(alone);
    console.log(`adversary: ${codes.length} requests, ${((codes.length * 1000) / attackMs).toFixed(0)} per s; answers by gRPC code ${JSON.stringify(byCode)}`);
    console.log(
      `median alone ${median(alone).toFixed(0)} ms, attacked ${median(attacked).toFixed(0)} ms: ${ratio.toFixed(2)}x (goal <= ${GOAL_RATIO}x); failed runs ${failures} (goal 0); load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    process.exitCode = ratio <= GOAL_RATIO && failures === 0 ? 0 : 1;
  } finally {
    await stack.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
