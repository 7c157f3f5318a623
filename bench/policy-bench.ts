import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog } from '../lib/audit';
import { evaluate, parseCompound, type NodeView } from '../lib/filter-language';
import { Policy } from '../lib/policy';

/**
 * Cost of authorization on the RunTask path (docs/security.md "Authorization policy"), at the fleet
 * sizes of docs/benchmarks.md:
 * - Policy.decide for a run selecting N nodes (N = 100 ... 100,000 nodes with 20 facts and 10
 *   classes each, as the synthetic fleet of the discovery benchmark) when the deciding rule has
 *   a `nodes` filter, after nine rules that do not match: median of RUNS, in ms, and the ratio to a baseline measured
 *   in the same run, evaluating the same filter on the same nodes with the filter language alone;
 * - the same decide when no rule has `nodes` (the nodes are never looked at): µs per call;
 * - one synchronous audit line appended to a file (a run line with input): µs per line.
 * Loading the selected nodes from the Redis index (only when a `nodes` rule could decide) is
 * the scheduler's NodeIndex.load, measured by bench/discovery-bench's load figures.
 * Run: `npm run build && npm run bench -- policy-bench`.
 */

const RUNS = 7;
const SIZES = [100, 1_000, 10_000, 100_000];
const NODES_FILTER = 'role=web and os.family=Debian and not class::decommissioned';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** A synthetic node: 20 facts, 10 classes, all matching NODES_FILTER. */
function node(i: number): NodeView {
  const facts: Record<string, unknown> = { role: 'web', os: { family: 'Debian', release: { major: '12' } }, datacenter: `dc${i % 7}` };
  for (let f = 0; f < 17; f++) facts[`fact_${f}`] = `value_${(i + f) % 50}`;
  return { identity: `node${i}.example.com`, facts, classes: Array.from({ length: 10 }, (_, c) => `profile::c${c}`), agents: ['rpcutil'] };
}

const NINE_OTHER_RULES = Array.from(
  { length: 9 },
  (_, i) => `  - {name: other-${i}, effect: allow, callers: ['/^cert=team-${i}-/'], tasks: ['team${i}::*']}`,
).join('\n');
const WITH_NODES = Policy.parse(
  `rules:\n${NINE_OTHER_RULES}\n  - {name: web, effect: allow, callers: [cert=alice], tasks: ['acme::*'], nodes: "${NODES_FILTER}"}\n`,
  'bench',
);
const WITHOUT_NODES = Policy.parse(`rules:\n${NINE_OTHER_RULES}\n  - {name: web, effect: allow, callers: [cert=alice], tasks: ['acme::*']}\n`, 'bench');

/** Median ms of `fn` over RUNS runs, after one warm-up. */
function timeMs(fn: () => unknown): number {
  fn();
  const runs: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = process.hrtime.bigint();
    fn();
    runs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(runs);
}

/** Median µs per call of `fn` over RUNS runs of `iterations` calls. */
function perCallUs(fn: () => unknown, iterations: number): number {
  for (let i = 0; i < iterations / 4; i++) fn();
  const runs: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn();
    runs.push(Number(process.hrtime.bigint() - t0) / 1e3 / iterations);
  }
  return median(runs);
}

function main(): void {
  const expr = parseCompound(NODES_FILTER);
  console.log(`policy-bench: 10 rules, the last deciding; nodes filter "${NODES_FILTER}"; median of ${RUNS}`);
  for (const n of SIZES) {
    const nodes = Array.from({ length: n }, (_, i) => node(i));
    const request = { caller: 'cert=alice', action: 'run' as const, task: 'acme::deploy', environment: 'production', nodes };
    let allowed = false;
    const decideMs = timeMs(() => (allowed = WITH_NODES.decide(request).allowed));
    if (!allowed) throw new Error('the bench policy should allow the run');
    const baselineMs = timeMs(() => nodes.every((x) => evaluate(expr, x)));
    console.log(
      `decide, nodes rule, ${String(n).padStart(7)} nodes: ${decideMs.toFixed(3)} ms (filter alone ${baselineMs.toFixed(3)} ms, ratio ${(decideMs / baselineMs).toFixed(2)})`,
    );
  }
  const plain = { caller: 'cert=alice', action: 'run' as const, task: 'acme::deploy', environment: 'production' };
  console.log(`decide, no nodes rule: ${perCallUs(() => WITHOUT_NODES.decide(plain), 100_000).toFixed(3)} µs per call`);

  const dir = mkdtempSync(join(tmpdir(), 'baton-policy-bench-'));
  try {
    const audit = AuditLog.open(join(dir, 'audit.log'), 'scheduler');
    const line = {
      event: 'run' as const,
      caller: 'cert=alice',
      task: 'acme::deploy',
      environment: 'production',
      filter: { facts: [{ fact: 'role', operator: 'FACT_OPERATOR_EQUAL', value: 'web' }] },
      nodes: 10_000,
      offline: 3,
      task_id: '0123456789abcdef0123456789abcdef',
      input: { version: '1.2.3', password: 'Sensitive [value redacted]' },
    };
    console.log(`audit line, synchronous append: ${perCallUs(() => audit.write(line), 5_000).toFixed(2)} µs per line`);
    audit.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
