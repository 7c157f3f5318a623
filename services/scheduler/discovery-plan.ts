import { randomUUID } from 'node:crypto';
import { FactOperator, type FactFilter, type Filter } from '../../gen/baton/v1/filter';
import type { FieldViolation } from '../../lib/errors';
import { compileEntry, compileFact, compileFilter, isRegexEntry, parseCompoundEntry, type NodeMatcher } from './discovery';
import { evaluate, filterRegex, referencedTaskIds, type BoltTaskLookup, type BoltTaskResultFields, type CompareOp, type FilterExpr } from '../../lib/filter-language';
import { InvalidArgumentError } from '../../lib/errors';
import { NodeState, type NodeResult } from '../../gen/baton/v1/run';
import type { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { unary } from '../../lib/grpc-client';
import { factIndexText, factNumber, type NodeIndex } from './node-index';
import { LuaScript } from '../../lib/lua-script';

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
  | { kind: 'OR'; parts: SetPlan[] }
  | { kind: 'NOT'; part: SetPlan };

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

/** A run's node results, for `bolt_task('<id>')` terms (the scheduler asks the results service). */
export type RunResultsSource = (taskId: string) => Promise<NodeResult[]>;

/** A RunResultsSource reading GetRunStatus; an unknown run is NOT_FOUND from the results service. */
export function resultsServiceSource(results: ResultsServiceClient): RunResultsSource {
  return async (taskId) => (await unary(results, results.getRunStatus, { taskId })).items;
}

/** Options of `runDiscovery`. */
export interface RunDiscoveryOptions {
  /** Where `bolt_task` terms get a run's results; without it such terms are rejected. */
  runResults?: RunResultsSource;
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
const RANGE_TO_SET_SCRIPT = new LuaScript('range-to-set', `
local m = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], ARGV[2])
for i = 1, #m, 5000 do
  redis.call('SADD', KEYS[1], unpack(m, i, math.min(i + 4999, #m)))
end
if #m > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return #m`);

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

const OP_OF: Partial<Record<CompareOp, FactOperator>> = {
  '==': FactOperator.FACT_OPERATOR_EQUAL,
  '<': FactOperator.FACT_OPERATOR_LESS,
  '<=': FactOperator.FACT_OPERATOR_LESS_EQUAL,
  '>': FactOperator.FACT_OPERATOR_GREATER,
  '>=': FactOperator.FACT_OPERATOR_GREATER_EQUAL,
};

/** The index part of one fact comparison, or undefined when it must be evaluated in memory. */
function planFact(index: NodeIndex, f: Pick<FactFilter, 'fact' | 'operator' | 'value'>): SetPlan | undefined {
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

/** A node result as the fields `bolt_task` compares (choria-tasks.md §6.2; times in epoch seconds). */
export function boltTaskFields(r: NodeResult): BoltTaskResultFields {
  const fields: BoltTaskResultFields = {
    task: r.task,
    caller: r.callerid,
    exitcode: r.exitcode,
    completed: r.completed,
    runtime: r.runtime,
    stdout: r.stdout,
    stderr: r.stderr,
  };
  if (r.startTime) fields.start_time = Math.floor(r.startTime.getTime() / 1000);
  return fields;
}

/**
 * Whether a recorded result means the node ran (or is running) the task. A node recorded as
 * NO_RESPONSE or cancelled before it started never ran it, like a node outside the run: it is
 * not `known` and matches no other field (Choria's 127 default made `exitcode > 0` pick it).
 */
function ranTask(r: NodeResult): boolean {
  return r.startTime !== undefined || r.completed || (r.state !== NodeState.NODE_STATE_NO_RESPONSE && r.state !== NodeState.NODE_STATE_CANCELLED);
}

/** The `bolt_task` data of the runs an expression names, fetched once per query. */
async function loadRunData(exprs: FilterExpr[], source: RunResultsSource | undefined): Promise<Map<string, Map<string, BoltTaskResultFields>>> {
  const ids = [...new Set(exprs.flatMap((e) => referencedTaskIds(e)))];
  const data = new Map<string, Map<string, BoltTaskResultFields>>();
  if (ids.length === 0) return data;
  if (!source) throw new InvalidArgumentError('bolt_task() terms need the results service, which this discovery has no access to', [{ field: 'filter.compound', description: 'bolt_task() is not available here' }]);
  await Promise.all(
    ids.map(async (id) => {
      const byHost = new Map<string, BoltTaskResultFields>();
      for (const r of await source(id)) if (ranTask(r)) byHost.set(r.host, boltTaskFields(r));
      data.set(id, byHost);
    }),
  );
  return data;
}

/** The index plan of a compound expression, or undefined when a term needs in-memory evaluation. */
async function planExpr(index: NodeIndex, expr: FilterExpr, runs: Map<string, Map<string, BoltTaskResultFields>>, lookup: BoltTaskLookup): Promise<SetPlan | undefined> {
  const { redis, keys } = index.store;
  switch (expr.kind) {
    case 'AND':
    case 'OR': {
      const parts = await Promise.all(expr.operands.map((o) => planExpr(index, o, runs, lookup)));
      if (parts.some((p) => p === undefined)) return undefined;
      return { kind: expr.kind, parts: parts as SetPlan[] };
    }
    case 'NOT': {
      const part = await planExpr(index, expr.operand, runs, lookup);
      return part && { kind: 'NOT', part };
    }
    case 'CLASS':
      return { kind: 'KEY', key: keys.nodeClass(expr.name.toLowerCase()) };
    case 'CLASS_REGEX': {
      const re = filterRegex(expr.pattern);
      const names = await redis.smembers(keys.classNames());
      return { kind: 'OR', parts: names.filter((n) => re.test(n)).map((n) => ({ kind: 'KEY', key: keys.nodeClass(n) })) };
    }
    case 'FACT': {
      const op = OP_OF[expr.operator];
      return op === undefined ? undefined : planFact(index, { fact: expr.path, operator: op, value: expr.value });
    }
    case 'BOLT_TASK': {
      // Evaluated over the run's results once: the matching hosts become a set. Nodes outside
      // the run match only when the term holds for "never ran" (`known == false`).
      const byHost = runs.get(expr.taskId) ?? new Map<string, BoltTaskResultFields>();
      const matching = [...byHost.keys()].filter((host) => evaluate(expr, { identity: host, facts: {}, classes: [], agents: [] }, lookup));
      const outsiders = evaluate(expr, { identity: '', facts: {}, classes: [], agents: [] }, () => undefined);
      if (!outsiders) return { kind: 'MEMBERS', ids: matching };
      return { kind: 'OR', parts: [{ kind: 'NOT', part: { kind: 'MEMBERS', ids: [...byHost.keys()] } }, { kind: 'MEMBERS', ids: matching }] };
    }
  }
}

/**
 * Plans a filter against the index. Throws InvalidArgumentError for a bad filter (as
 * `compileFilter`). Identity entries are resolved against the identity list; class and agent
 * regexes against the lists of names ever indexed.
 */
export async function planFilter(index: NodeIndex, filter: Filter | undefined, runResults?: RunResultsSource): Promise<FilterPlan> {
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
  const exprs = filter.compound.map((text, i) => parseCompoundEntry(text, `filter.compound[${i}]`, ignored)).filter((e): e is FilterExpr => e !== undefined);
  const runs = await loadRunData(exprs, runResults);
  const lookup: BoltTaskLookup = (taskId, host) => runs.get(taskId)?.get(host);
  for (const expr of exprs) {
    // Top-level AND operands are planned one by one, so one term the index cannot answer
    // leaves only its own operand to memory.
    for (const operand of expr.kind === 'AND' ? expr.operands : [expr]) {
      const planned = await planExpr(index, operand, runs, lookup);
      if (planned) parts.push(planned);
      else residual.push((node) => evaluate(operand, node, lookup));
    }
  }
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
        await RANGE_TO_SET_SCRIPT.run(redis, [key, plan.key], [plan.min, plan.max, String(DISCOVERY_TEMP_TTL_S)]);
        return key;
      }
      case 'NOT': {
        const inner = await this.build(plan.part);
        const key = this.temp();
        if (inner === ALL_NODES) return key; // not every node: none
        await redis.multi().sdiffstore(key, this.index.store.keys.allNodes(), inner).expire(key, DISCOVERY_TEMP_TTL_S).exec();
        return key;
      }
      case 'AND': {
        // AND with negated parts subtracts them from the rest (SDIFFSTORE) instead of building
        // each complement against every node.
        const positive = plan.parts.filter((p) => p.kind !== 'NOT');
        const negative = plan.parts.flatMap((p) => (p.kind === 'NOT' ? [p.part] : []));
        if (negative.length === 0) return this.combine('AND', positive);
        const base = positive.length === 0 ? this.index.store.keys.allNodes() : await this.combine('AND', positive);
        const minus = await Promise.all(negative.map((p) => this.build(p)));
        const key = this.temp();
        if (minus.includes(ALL_NODES)) return key;
        await redis.multi().sdiffstore(key, base === ALL_NODES ? this.index.store.keys.allNodes() : base, ...(minus as string[])).expire(key, DISCOVERY_TEMP_TTL_S).exec();
        return key;
      }
      case 'OR':
        return this.combine('OR', plan.parts);
    }
  }

  /** Intersection or union of the parts' sets. */
  private async combine(kind: 'AND' | 'OR', parts: SetPlan[]): Promise<string | typeof ALL_NODES> {
    const built = await Promise.all(parts.map((p) => this.build(p)));
    const keys = built.filter((k): k is string => k !== ALL_NODES);
    if (kind === 'OR' && keys.length < built.length) return ALL_NODES;
    if (kind === 'AND' && keys.length === 0) return ALL_NODES;
    if (kind === 'OR' && keys.length === 0) return this.temp(); // OR of nothing: no node
    if (keys.length === 1) return keys[0];
    const key = this.temp();
    const tx = this.index.store.redis.multi();
    if (kind === 'AND') tx.sinterstore(key, ...keys);
    else tx.sunionstore(key, ...keys);
    await tx.expire(key, DISCOVERY_TEMP_TTL_S).exec();
    return key;
  }
}

/** Sorted by UTF-16 code units (the default sort of strings, faster than a comparator). */
function sorted(ids: string[]): string[] {
  return ids.sort();
}

/**
 * Runs a filter against the index: online matches, and the count (or list) of offline ones
 * (issue 5 point 4). Online means the connected flag and a heartbeat within
 * STALE_AFTER_HEARTBEATS intervals, as `NodeIndex.isOnline`.
 */
export async function runDiscovery(index: NodeIndex, filter: Filter | undefined, options: RunDiscoveryOptions = {}): Promise<DiscoveryResult> {
  const plan = await planFilter(index, filter, options.runResults);
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
    // Online = in the online set (flag set) and not stale; stale-but-flagged nodes are few (an
    // agent that died without its stream ending), so they are read and removed client-side.
    const replies = await redis
      .multi()
      .call(matched === ALL_NODES ? 'SMEMBERS' : 'SINTER', ...(matched === ALL_NODES ? [keys.onlineSet()] : [matched, keys.onlineSet()]))
      .scard(matched === ALL_NODES ? keys.allNodes() : matched)
      .zrangebyscore(keys.online(), '-inf', `(${fresh}`)
      .exec();
    let online = (replies?.[0]?.[1] as string[]) ?? [];
    const total = Number(replies?.[1]?.[1] ?? 0);
    const stale = (replies?.[2]?.[1] as string[]) ?? [];
    if (stale.length > 0) {
      const staleSet = new Set(stale);
      online = online.filter((id) => !staleSet.has(id));
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
