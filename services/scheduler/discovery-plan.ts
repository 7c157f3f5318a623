import { randomUUID } from 'node:crypto';
import { FactOperator, type FactFilter, type Filter } from '../../gen/baton/v1/filter';
import type { FieldViolation } from '../../lib/errors';
import { compileEntry, compileFact, compileFilter, isRegexEntry, type NodeMatcher } from './discovery';
import { factIndexText, factNumber, type NodeIndex } from './node-index';

/**
 * Query planning for discovery (issue 5 point 2): the parts of a Filter the Redis index can
 * answer become set algebra in Redis (SINTERSTORE / SUNIONSTORE over the inverted sets, numeric
 * ranges from the fact zsets); the rest (`!=`, `=~`, text ordering, compound expressions) is
 * evaluated in memory on the nodes that set algebra left.
 */

/** A set of identities the index can compute. */
export type SetPlan =
  | { kind: 'ALL' }
  | { kind: 'KEY'; key: string }
  | { kind: 'MEMBERS'; ids: string[] }
  | { kind: 'RANGE'; key: string; min: string; max: string }
  | { kind: 'AND'; parts: SetPlan[] }
  | { kind: 'OR'; parts: SetPlan[] };

/** A planned filter: the index part, and the matchers left for the candidates it yields. */
export interface FilterPlan {
  set: SetPlan;
  residual: NodeMatcher[];
}

/** What `runDiscovery` found: matching identities online, and those matching but offline. */
export interface DiscoveryResult {
  /** Online matches, sorted by identity. */
  online: string[];
  /** How many more matched but are offline (flag cleared or heartbeat stale). */
  offlineCount: number;
  /** The offline matches, sorted; only when asked for (`listOffline`). */
  offline: string[];
}

/** Options of `runDiscovery`. */
export interface RunDiscoveryOptions {
  /** Also list the offline matches (not just count them); default false. */
  listOffline?: boolean;
  /** The current time in ms, for liveness; default Date.now(). */
  nowMs?: number;
}

/** Seconds a query's temporary keys live if the query dies before deleting them. */
export const DISCOVERY_TEMP_TTL_S = 30;

/** Members added per SADD when a client-side list becomes a set. */
const SADD_CHUNK = 10_000;

/**
 * Copies the members of a score range of a fact zset into a set.
 * KEYS[1] destination set, KEYS[2] fact zset; ARGV[1] min, ARGV[2] max (ZRANGEBYSCORE syntax,
 * `(` for exclusive), ARGV[3] TTL seconds. Returns the number of members copied.
 */
const RANGE_TO_SET_SCRIPT = `
local m = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], ARGV[2])
for i = 1, #m, 5000 do
  redis.call('SADD', KEYS[1], unpack(m, i, math.min(i + 4999, #m)))
end
if #m > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return #m`;

/** The ZRANGEBYSCORE bounds of a numeric comparison, or undefined for operators a range cannot answer. */
function numericRange(op: FactOperator, n: number): [string, string] | undefined {
  switch (op) {
    case FactOperator.FACT_OPERATOR_EQUAL:
      return [String(n), String(n)];
    case FactOperator.FACT_OPERATOR_LESS:
      return ['-inf', `(${n}`];
    case FactOperator.FACT_OPERATOR_LESS_EQUAL:
      return ['-inf', String(n)];
    case FactOperator.FACT_OPERATOR_GREATER:
      return [`(${n}`, '+inf'];
    case FactOperator.FACT_OPERATOR_GREATER_EQUAL:
      return [String(n), '+inf'];
    default:
      return undefined;
  }
}

/** The index part of one fact comparison, or undefined when it must be evaluated in memory. */
function planFact(index: NodeIndex, f: FactFilter): SetPlan | undefined {
  const { keys } = index.store;
  const n = factNumber(f.value);
  if (n !== undefined) {
    // A number compares numerically with numeric facts, which are in the zset whatever their
    // type (4 or "4"); a non-numeric fact never matches a numeric comparison (discovery.ts).
    const range = numericRange(f.operator, n);
    if (range) return { kind: 'RANGE', key: keys.factNumber(f.fact), min: range[0], max: range[1] };
    return undefined;
  }
  if (f.operator === FactOperator.FACT_OPERATOR_EQUAL) return { kind: 'KEY', key: keys.factValue(f.fact, factIndexText(f.value)) };
  return undefined;
}

/**
 * Plans a filter against the index. Throws InvalidArgumentError for a bad filter (as
 * `compileFilter`). Identity entries are resolved against the identity list; class and agent
 * regexes against the lists of names ever indexed.
 */
export async function planFilter(index: NodeIndex, filter: Filter | undefined): Promise<FilterPlan> {
  compileFilter(filter); // validation: every problem of the filter in one INVALID_ARGUMENT
  if (!filter) return { set: { kind: 'ALL' }, residual: [] };
  const { redis, keys } = index.store;
  const ignored: FieldViolation[] = [];
  const parts: SetPlan[] = [];
  const residual: NodeMatcher[] = [];
  if (filter.identities.length > 0) {
    const matchers = filter.identities.map((e) => compileEntry(e, 'identity', false, ignored));
    const all = await index.identities();
    parts.push({ kind: 'MEMBERS', ids: all.filter((id) => matchers.some((m) => m(id))) });
  }
  const byName = async (entries: string[], caseInsensitive: boolean, namesKey: string, keyOf: (name: string) => string): Promise<void> => {
    let names: string[] | undefined;
    for (const entry of entries) {
      if (!isRegexEntry(entry)) {
        parts.push({ kind: 'KEY', key: keyOf(caseInsensitive ? entry.toLowerCase() : entry) });
        continue;
      }
      names ??= await redis.smembers(namesKey);
      const m = compileEntry(entry, 'entry', caseInsensitive, ignored);
      parts.push({ kind: 'OR', parts: names.filter(m).map((name) => ({ kind: 'KEY', key: keyOf(name) })) });
    }
  };
  await byName(filter.classes, true, keys.classNames(), (c) => keys.nodeClass(c));
  await byName(filter.agents, false, keys.agentNames(), (a) => keys.nodeAgent(a));
  filter.facts.forEach((f, i) => {
    const planned = planFact(index, f);
    if (planned) parts.push(planned);
    else residual.push(compileFact(f, `filter.facts[${i}]`, ignored));
  });
  return { set: parts.length === 0 ? { kind: 'ALL' } : { kind: 'AND', parts }, residual };
}

/** `Materializer.build`'s answer for "every node" (no set is built for it). */
const ALL_NODES = Symbol('ALL_NODES');

/** Builds the sets of a plan in Redis; temporary keys are collected for deletion. */
class Materializer {
  readonly temps: string[] = [];

  constructor(private readonly index: NodeIndex) {}

  private temp(): string {
    const key = this.index.store.keys.discoveryTemp(randomUUID());
    this.temps.push(key);
    return key;
  }

  /** The key holding the plan's set, or ALL_NODES. A missing key is an empty set. */
  async build(plan: SetPlan): Promise<string | typeof ALL_NODES> {
    const { redis } = this.index.store;
    switch (plan.kind) {
      case 'ALL':
        return ALL_NODES;
      case 'KEY':
        return plan.key;
      case 'MEMBERS': {
        const key = this.temp();
        if (plan.ids.length === 0) return key;
        const p = redis.pipeline();
        for (let i = 0; i < plan.ids.length; i += SADD_CHUNK) p.sadd(key, ...plan.ids.slice(i, i + SADD_CHUNK));
        p.expire(key, DISCOVERY_TEMP_TTL_S);
        await p.exec();
        return key;
      }
      case 'RANGE': {
        const key = this.temp();
        await redis.eval(RANGE_TO_SET_SCRIPT, 2, key, plan.key, plan.min, plan.max, String(DISCOVERY_TEMP_TTL_S));
        return key;
      }
      case 'AND':
      case 'OR': {
        const built = await Promise.all(plan.parts.map((p) => this.build(p)));
        const keys = built.filter((k): k is string => k !== ALL_NODES);
        if (plan.kind === 'OR' && keys.length < built.length) return ALL_NODES;
        if (plan.kind === 'AND' && keys.length === 0) return ALL_NODES;
        if (plan.kind === 'OR' && keys.length === 0) return this.temp(); // OR of nothing: no node
        if (keys.length === 1) return keys[0];
        const key = this.temp();
        const tx = redis.multi();
        if (plan.kind === 'AND') tx.sinterstore(key, ...keys);
        else tx.sunionstore(key, ...keys);
        await tx.expire(key, DISCOVERY_TEMP_TTL_S).exec();
        return key;
      }
    }
  }
}

function sorted(ids: string[]): string[] {
  return ids.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Runs a filter against the index: online matches, and the count (or list) of offline ones
 * (issue 5 point 4). Online means the connected flag and a heartbeat within
 * STALE_AFTER_HEARTBEATS intervals, as `NodeIndex.isOnline`.
 */
export async function runDiscovery(index: NodeIndex, filter: Filter | undefined, options: RunDiscoveryOptions = {}): Promise<DiscoveryResult> {
  const plan = await planFilter(index, filter);
  const { redis, keys } = index.store;
  const nowMs = options.nowMs ?? Date.now();
  const fresh = index.freshSinceMs(nowMs);
  const m = new Materializer(index);
  try {
    const matched = await m.build(plan.set);
    if (plan.residual.length > 0) {
      // Terms the index cannot answer: load the candidates and finish in memory.
      const candidates = matched === ALL_NODES ? await index.identities() : await redis.smembers(matched);
      const nodes = (await index.load(candidates)).filter((n) => plan.residual.every((r) => r(n)));
      const online = nodes.filter((n) => index.isOnline(n, nowMs)).map((n) => n.identity);
      const onlineSet = new Set(online);
      const offline = nodes.map((n) => n.identity).filter((id) => !onlineSet.has(id));
      return { online, offlineCount: offline.length, offline: options.listOffline ? offline : [] };
    }
    let online: string[];
    let total: number;
    if (matched === ALL_NODES) {
      [online, total] = await Promise.all([redis.zrangebyscore(keys.online(), fresh, '+inf'), redis.zcard(keys.identities())]);
    } else {
      const onlineMatched = keys.discoveryTemp(randomUUID());
      m.temps.push(onlineMatched);
      const replies = await redis
        .multi()
        .zinterstore(onlineMatched, 2, matched, keys.online(), 'WEIGHTS', 0, 1)
        .zrangebyscore(onlineMatched, fresh, '+inf')
        .scard(matched)
        .exec();
      online = (replies?.[1]?.[1] as string[]) ?? [];
      total = Number(replies?.[2]?.[1] ?? 0);
    }
    let offline: string[] = [];
    if (options.listOffline && total > online.length) {
      const onlineSet = new Set(online);
      const all = matched === ALL_NODES ? await index.identities() : await redis.smembers(matched);
      offline = sorted(all.filter((id) => !onlineSet.has(id)));
    }
    return { online: sorted(online), offlineCount: total - online.length, offline };
  } finally {
    if (m.temps.length > 0) await redis.del(...m.temps);
  }
}
