import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { Hello } from '../../gen/baton/v1/agent_gateway_service';
import { FactOperator, Filter, type FactFilter } from '../../gen/baton/v1/filter';
import { NodeResult, NodeState } from '../../gen/baton/v1/run';
import { boltTaskFields, parseResultWhere, ranTask, resultMatches } from '../../lib/bolt-task-results';
import {
  BOLT_TASK_FIELDS,
  compileFilter,
  COMPARE_OPS,
  evaluate,
  formatExpr,
  parseFactFilter,
  type BoltTaskLookup,
  type BoltTaskResultFields,
  type FilterExpr,
  type FilterTerm,
  type NodeView,
} from '../../lib/filter-language';
import { RedisKeys } from '../../lib/redis';
import { uniquePrefix, useRedisServer } from '../../test/helpers/redis';
import { runDiscovery, type RunResultsSource } from './discovery-plan';
import { NodeIndex } from './node-index';

/**
 * The two paths of discovery must agree: every generated filter (all of -I, -C, -A, -F, -W-like
 * terms and -S expressions with and, or, not and bolt_task terms) selects the same nodes through
 * the Redis index (set algebra in a real redis-server, the rest evaluated on the candidates) as
 * through the in-memory evaluator alone. Nodes and filters come from a seeded generator whose
 * values sit on the edges of the comparison rules: numeric text, overflowing numbers, mixed
 * case, booleans, nulls, nested and literally dotted fact names, objects and arrays.
 * FILTER_PATHS_SEED picks another seed; a failure prints the seed, the filter and both answers.
 */

const redis = useRedisServer();

const FILTERS = 5_000;
const NODES = 60;
/** Queries in flight at once: enough to keep Redis busy, few enough not to queue behind each other for long. */
const CONCURRENT_QUERIES = 50;
const SEED = Number(process.env.FILTER_PATHS_SEED ?? 0x18f11e5);
const TASK_A = 'a'.repeat(32);
const TASK_B = 'b'.repeat(32);

/** mulberry32: a small seeded generator, so a failure can be replayed from its seed. */
function generator(seed: number) {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  const pick = <T>(list: readonly T[]): T => list[int(list.length)];
  const some = <T>(list: readonly T[], p: number): T[] => list.filter(() => next() < p);
  return { next, int, pick, some };
}
type Gen = ReturnType<typeof generator>;

const CLASSES = ['role::web', 'Role::DB', 'profile::base', 'apache', 'apache::mod::ssl', 'Profile::Monitor'];
const AGENTS = ['bolt_tasks', 'rpcutil', 'puppet', 'Shell'];
/** Fact values on the edges of the rules, as agents report them. */
const VALUES: readonly unknown[] = [
  4,
  16,
  -1,
  0,
  1.5,
  1000,
  1e21,
  '32',
  '08',
  ' 7 ',
  '1e999',
  '1E5',
  '-0',
  'production',
  'Prod',
  'p',
  'P',
  'debian',
  'RedHat',
  'zed',
  '',
  'é',
  'Ünïcode',
  true,
  false,
  null,
  'true',
  'TRUE',
];
const FACT_NAMES = [
  'env',
  'cpus',
  'os.family',
  'os.release.major',
  'flag',
  'dotted.name',
  'list.0',
  'list.1',
  'obj',
  'missing',
  'os',
  'serial',
  'zone',
  'zone',
];
/** Zones by share of the fleet: held by more and fewer nodes than the index's rare-values threshold, and moved across it by the second wave of Hellos. */
const ZONES = ['a', 'a', 'a', 'a', 'b', 'b', 'b', 'c', 'c', 'd'];
/** Filter operands: the fact values as text, and a few that are numbers of other spellings. */
const OPERANDS = [
  '4',
  '16',
  '-1',
  '0',
  '1.5',
  '1e3',
  '1E21',
  '32',
  '8',
  '7',
  '1e999',
  '100000',
  'production',
  'prod',
  'p',
  'P',
  'debian',
  'redhat',
  'z',
  '',
  'é',
  'true',
  'false',
  'abc',
  '{"a":1}',
  'SN3',
  'sn17',
  'sn59',
  'sn3-b',
  'a',
  'B',
  'c',
  'd',
];
const REGEXES = ['^p', 'PROD', '^[0-9]+$', 'a|e', '^$', '.', 'deb|red', '^(a|a)*$', '1\\.5', '"a"', 'ü'];
// With the anchored ones with literal text (only identities starting with it are tested), some
// whose text a repeat or an alternative cuts short.
const NAME_REGEXES = [
  '^web',
  '^ROLE::',
  'base$',
  '^(db|win)',
  'ssl',
  '^[a-z]+$',
  'S',
  '\\d',
  '^web1',
  '^Win?1',
  '^app1\\.',
  '^db1+0',
  '^web1|^app2',
  '^web1.*EXAMPLE',
];

function generateNode(g: Gen, i: number) {
  const facts: Record<string, unknown> = {};
  if (g.next() < 0.8) facts.env = g.pick(VALUES);
  if (g.next() < 0.8) facts.cpus = g.pick(VALUES);
  if (g.next() < 0.7) facts.os = { family: g.pick(VALUES), release: { major: g.pick(VALUES) } };
  if (g.next() < 0.3) facts.os = g.pick(VALUES); // a scalar where others have an object
  if (g.next() < 0.5) facts.flag = g.pick([true, false, 'true', 'FALSE', null]);
  if (g.next() < 0.4) facts['dotted.name'] = g.pick(VALUES);
  if (g.next() < 0.2) facts['os.family'] = g.pick(VALUES); // a literal dotted name shadowing the nested one
  if (g.next() < 0.4) facts.list = g.some(VALUES, 0.1);
  if (g.next() < 0.3) facts.obj = { a: g.pick(VALUES), 'b.c': g.pick(VALUES) };
  // A value of its own on each node (rare in any index), and a zone shared by a few to many.
  facts.serial = `SN${i}`;
  facts.zone = g.pick(ZONES);
  const identity = `${g.pick(['web', 'db', 'Win', 'app'])}${i}.${g.pick(['example.com', 'EXAMPLE.net'])}`;
  return { identity, classes: g.some(CLASSES, 0.4), agents: g.some(AGENTS, 0.5), facts };
}

/**
 * The second Hello of some nodes: most of zone a moves to d and half of b to c, so values cross
 * the rare-values threshold both ways (bitmaps made and turned back into records), and some
 * serials change.
 */
function moveNode(g: Gen, node: ReturnType<typeof generateNode>): ReturnType<typeof generateNode> | undefined {
  const zone = node.facts.zone as string;
  const moved = zone === 'a' && g.next() < 0.8 ? 'd' : zone === 'b' && g.next() < 0.5 ? 'c' : undefined;
  const reserial = g.next() < 0.3;
  if (!moved && !reserial) return undefined;
  return { ...node, facts: { ...node.facts, zone: moved ?? zone, serial: reserial ? `${String(node.facts.serial)}-b` : node.facts.serial } };
}

function entry(g: Gen, names: readonly string[]): string {
  return g.next() < 0.6 ? g.pick(names) : `/${g.pick(NAME_REGEXES)}/`;
}

function generateTerm(g: Gen, identities: readonly string[]): FilterTerm {
  const r = g.next();
  if (r < 0.1) return { kind: 'CLASS', name: g.pick(CLASSES).toUpperCase() };
  if (r < 0.15) return { kind: 'CLASS_REGEX', pattern: g.pick(NAME_REGEXES) };
  if (r < 0.2) return { kind: 'IDENTITY', name: g.pick(identities) };
  if (r < 0.25) return { kind: 'IDENTITY_REGEX', pattern: g.pick(NAME_REGEXES) };
  if (r < 0.3) return g.next() < 0.5 ? { kind: 'AGENT', name: g.pick(AGENTS) } : { kind: 'AGENT_REGEX', pattern: g.pick(NAME_REGEXES) };
  if (r < 0.4) {
    const field = g.pick(BOLT_TASK_FIELDS);
    const operator = g.pick(['==', '!=', '>', '<=', '=~'] as const);
    const value = operator === '=~' ? g.pick(['^acme', 'x', '.*']) : g.pick(['0', '1', '2', 'true', 'false', 'acme::x', 'x']);
    return { kind: 'BOLT_TASK', taskId: g.pick([TASK_A, TASK_B]), field, operator, value };
  }
  const operator = g.pick(COMPARE_OPS);
  const value = operator === '=~' || operator === '!~' ? g.pick(REGEXES) : g.pick(OPERANDS);
  return { kind: 'FACT', path: g.pick(FACT_NAMES), operator, value };
}

function generateExpr(g: Gen, identities: readonly string[], depth = 0): FilterExpr {
  const r = g.next();
  if (depth >= 3 || r < 0.4) return generateTerm(g, identities);
  if (r < 0.55) return { kind: 'NOT', operand: generateExpr(g, identities, depth + 1) };
  const operands = Array.from({ length: 2 + g.int(3) }, () => generateExpr(g, identities, depth + 1));
  return { kind: r < 0.8 ? 'AND' : 'OR', operands };
}

/** A Filter as a client sends it: each kind of field sometimes set, compound texts printed from random expressions. */
function generateFilter(g: Gen, identities: readonly string[]): Filter {
  const facts: FactFilter[] = [];
  for (let i = g.int(3); i > 0; i--) {
    if (g.next() < 0.5) {
      // As the CLI's -F reads it.
      const op = g.pick(['=', '==', '!=', '<', '>=', '=~'] as const);
      facts.push(parseFactFilter(`${g.pick(FACT_NAMES)}${op}${op === '=~' ? g.pick(REGEXES) : g.pick(OPERANDS.filter((o) => o !== ''))}`));
    } else {
      const operator = g.pick([
        FactOperator.FACT_OPERATOR_EQUAL,
        FactOperator.FACT_OPERATOR_NOT_EQUAL,
        FactOperator.FACT_OPERATOR_LESS,
        FactOperator.FACT_OPERATOR_LESS_EQUAL,
        FactOperator.FACT_OPERATOR_GREATER,
        FactOperator.FACT_OPERATOR_GREATER_EQUAL,
        FactOperator.FACT_OPERATOR_MATCHES,
      ]);
      facts.push({ fact: g.pick(FACT_NAMES), operator, value: operator === FactOperator.FACT_OPERATOR_MATCHES ? g.pick(REGEXES) : g.pick(OPERANDS) });
    }
  }
  return Filter.fromPartial({
    identities: g.next() < 0.2 ? Array.from({ length: 1 + g.int(3) }, () => entry(g, identities)) : [],
    classes: g.next() < 0.2 ? Array.from({ length: 1 + g.int(2) }, () => entry(g, CLASSES)) : [],
    agents: g.next() < 0.15 ? [entry(g, AGENTS)] : [],
    facts,
    compound: Array.from({ length: g.int(3) }, () => formatExpr(generateExpr(g, identities))),
  });
}

/** Results of two earlier runs over part of the fleet, some nodes never started. */
function generateResults(g: Gen, identities: readonly string[]): Map<string, NodeResult[]> {
  const runs = new Map<string, NodeResult[]>();
  for (const taskId of [TASK_A, TASK_B]) {
    runs.set(
      taskId,
      g.some(identities, 0.6).map((host) => {
        const started = g.next() < 0.8;
        return NodeResult.fromPartial({
          host,
          taskId,
          task: g.pick(['acme::x', 'acme::y']),
          callerid: 'user=x',
          state: started
            ? g.pick([NodeState.NODE_STATE_SUCCEEDED, NodeState.NODE_STATE_FAILED, NodeState.NODE_STATE_RUNNING])
            : NodeState.NODE_STATE_NO_RESPONSE,
          completed: started && g.next() < 0.8,
          exitcode: started ? g.pick([0, 1, 2]) : -1,
          startTime: started ? new Date(1_700_000_000_000) : undefined,
          stdout: g.pick(['', 'x', 'ok']),
        });
      }),
    );
  }
  return runs;
}

describe('discovery: the Redis index path and the in-memory path', () => {
  it(`select the same nodes for ${FILTERS} generated filters over ${NODES} generated nodes (seed ${SEED})`, async () => {
    const g = generator(SEED);
    const first = Array.from({ length: NODES }, (_, i) => generateNode(g, i));
    const second = first.map((n) => moveNode(g, n));
    const fleet = first.map((n, i) => second[i] ?? n);
    const identities = fleet.map((n) => n.identity);
    const runs = generateResults(g, identities);
    // The index path asks the results service's logic (lib/bolt-task-results) for each term.
    const runResults: RunResultsSource = (taskId, _fields, where) => {
      const items = runs.get(taskId) ?? [];
      return Promise.resolve(where ? items.filter((r) => resultMatches(parseResultWhere(where, taskId), r)) : items);
    };
    const fields = new Map<string, Map<string, BoltTaskResultFields>>();
    for (const [taskId, items] of runs) fields.set(taskId, new Map(items.filter(ranTask).map((r) => [r.host, boltTaskFields(r)])));
    const lookup: BoltTaskLookup = (taskId, host) => fields.get(taskId)?.get(host);

    // Every form of membership: sets of names (the default threshold) and bitmaps (from 2
    // members); fact values as records of rare values below 16 holders (the default) or 2, or
    // as bitmaps only (1). The second Hellos go through two writers at once.
    const indexes: NodeIndex[] = [];
    for (const [bitmapMinMembers, rareFactHolders] of [
      [undefined, undefined],
      [2, 2],
      [undefined, 1],
    ]) {
      const prefix = uniquePrefix();
      const [index, other] = [0, 1].map(() => new NodeIndex(redis.client(), new RedisKeys(prefix), 10, bitmapMinMembers, rareFactHolders));
      await Promise.all(first.map((n) => index.upsert(Hello.fromPartial(n), `s-${n.identity}`)));
      await Promise.all(second.map((n, i) => (n ? [index, other][i % 2].upsert(Hello.fromPartial(n), `s-${n.identity}`) : Promise.resolve())));
      indexes.push(index);
    }
    const views: NodeView[] = fleet;

    const filters = Array.from({ length: FILTERS }, () => generateFilter(g, identities));
    let selecting = 0;
    for (let from = 0; from < filters.length; from += CONCURRENT_QUERIES) {
      await Promise.all(
        filters.slice(from, from + CONCURRENT_QUERIES).map(async (filter, k) => {
          const n = from + k;
          const query = compileFilter(filter);
          const expected = views
            .filter((v) => evaluate(query, v, lookup))
            .map((v) => v.identity)
            .sort();
          // Nodes may turn stale on a slow machine: online and offline matches together.
          const found = await runDiscovery(indexes[n % indexes.length], query, { runResults, listOffline: true });
          const actual = [...found.online, ...found.offline].sort();
          if (expected.length > 0) selecting++;
          // The message is built only for a failure: 5,000 of them would cost more than the checks.
          if (!isDeepStrictEqual(actual, expected))
            assert.deepEqual(actual, expected, `seed ${SEED}, filter #${n}: ${JSON.stringify(Filter.toJSON(filter))}\nquery: ${formatExpr(query)}`);
        }),
      );
    }
    // A generator that only made filters selecting nothing (or everything) would prove little.
    assert.ok(selecting > FILTERS / 4, `only ${selecting} filters selected any node`);
  });
});
