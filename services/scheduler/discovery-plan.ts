import {
  evaluate,
  filterRegex,
  formatExpr,
  readNumber,
  indexText,
  referencedTaskIds,
  type BoltTaskLookup,
  type BoltTaskResultFields,
  type CompareOp,
  type FilterExpr,
  type FilterTerm,
  type NodeView,
} from '../../lib/filter-language';
import { boltTaskFields, parseResultWhere, ranTask, resultFieldsFor, resultMatches } from '../../lib/bolt-task-results';
import { InvalidArgumentError } from '../../lib/errors';
import type { NodeResult } from '../../gen/baton/v1/run';
import type { ResultsServiceClient } from '../../gen/baton/v1/results_service';
import { onBehalfOf, ON_BEHALF_OF_SELF } from '../../lib/access-control';
import { unary } from '../../lib/grpc-client';
import { isFinalRunState } from '../../lib/run-states';
import type { NodeIndex } from './node-index';
import { LuaScript } from '../../lib/lua-script';
import { anchoredLiteralPrefix } from '../../lib/linear-regex';
import { INDEX_CHUNK_NODES, type RedisKeys } from '../../lib/redis';
import { andInto, andNotInto, bitmapOfIds, clearBit, countBits, emptyBitmap, fitBitmap, joinChunks, orInto, type NodeBitmap } from './node-bitmap';

/**
 * Query planning for discovery: the parts of a compiled filter the Redis index can
 * answer become set algebra over bitmaps of node ids (the membership bitmaps, or small sets,
 * of fact values, classes and agents, and the records of rare fact values, docs/discovery-index.md;
 * numeric ranges from the fact zsets of offsets), read by
 * one script call per index chunk (in parallel: the chunks are in different Redis Cluster
 * slots), joined and combined in memory (node-bitmap.ts); the rest (`!=`, `=~`, text ordering) is
 * evaluated in memory on the nodes that set algebra left. Names travel only as bits: the
 * scheduler's id → identity copy (node-names.ts) turns the answer into identities, so a query
 * matching 68,000 of 100,000 nodes moves 12.5 kB per term instead of 1.5 MB of names.
 */

/** A membership of the index: the nodes with a fact value (lowercased text), a class (lowercased) or an agent. */
export type Membership = { of: 'fact'; path: string; value: string } | { of: 'class'; name: string } | { of: 'agent'; name: string };

/** The set key of a membership in one index chunk. */
function membershipKey(keys: RedisKeys, chunk: number, m: Membership): string {
  switch (m.of) {
    case 'fact':
      return keys.factValue(chunk, m.path, m.value);
    case 'class':
      return keys.nodeClass(chunk, m.name);
    case 'agent':
      return keys.nodeAgent(chunk, m.name);
  }
}

/**
 * A set of nodes the index can compute: every node; a membership (KEY: read in each chunk as
 * its bitmap when it has one, else its set); identities; node ids, as a list or a bitmap (BITS,
 * shared: not to be changed); a score range of a numeric
 * fact's zsets of offsets; and their combinations.
 */
export type SetPlan =
  | { kind: 'ALL' }
  | { kind: 'KEY'; set: Membership }
  | { kind: 'MEMBERS'; ids: string[] }
  | { kind: 'IDS'; ids: number[] }
  | { kind: 'BITS'; bits: NodeBitmap }
  | { kind: 'RANGE'; path: string; min: string; max: string }
  | { kind: 'AND'; parts: SetPlan[] }
  | { kind: 'OR'; parts: SetPlan[] }
  | { kind: 'NOT'; part: SetPlan };

/** A node predicate, for what the index cannot answer. */
export type NodeMatcher = (node: NodeView) => boolean;

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

/**
 * A run's node results, for `bolt_task('<id>')` terms (the scheduler asks the results service).
 * `fields` names the NodeResult fields (proto names) the terms compare; a source may leave the
 * others unset. With `where` (an expression of that run's `bolt_task` terms, as GetRunStatus's
 * `result_fields.where`), only the nodes the task is known on that satisfy it, of which only
 * `host` is read (a source may leave every other field unset).
 */
export type RunResultsSource = (taskId: string, fields: string[], where?: string) => Promise<NodeResult[]>;

/**
 * How long the results of a finished run are reused by later discovery queries, in ms. Even
 * slim, reading a 10,000-node run costs the results service and the scheduler tens of ms
 * (bench/discovery-bench), and the usual pattern asks for the same finished run several times
 * in a row (`baton discover -S bolt_task(...)`, then the run with the same filter). A
 * finished run's results change only when a late answer replaces a NO_RESPONSE
 * (lib/run-states.ts), so a query may miss such an answer for at most this long. Runs still going
 * are never cached.
 */
export const FINISHED_RUN_CACHE_TTL_MS = 10_000;

/** Finished runs whose results are kept at once (a 10,000-node slim read is ~1 MB). */
const FINISHED_RUN_CACHE_MAX_RUNS = 8;

/** Options of `resultsServiceSource`. */
export interface ResultsSourceOptions {
  /** How long a finished run's results are reused, in ms; default FINISHED_RUN_CACHE_TTL_MS, 0 never. */
  cacheTtlMs?: number;
  /** The clock, in ms; default Date.now. */
  now?: () => number;
  /**
   * Whose query this is: an operator's caller id, forwarded so the results service checks the
   * read as theirs (policy `read`, own-results-only; Choria's bolt_task data plugin had no RBAC
   * at all, docs/choria-compat.md §7); undefined for the scheduler itself. A cached answer is reused
   * only for the same caller.
   */
  caller?: string;
}

/** Slim reads of finished runs, per results client (every query makes a new source over the same client), keyed by caller, run, fields and where. */
const finishedRuns = new WeakMap<ResultsServiceClient, Map<string, { atMs: number; items: NodeResult[] }>>();

/**
 * A RunResultsSource reading a slim GetRunStatus (only the fields the terms compare, and with
 * `where` only the matching nodes' names: over a 10,000-node run the whole status costs far more),
 * reusing a finished run's answer for FINISHED_RUN_CACHE_TTL_MS; an unknown run
 * is NOT_FOUND from the results service.
 */
export function resultsServiceSource(results: ResultsServiceClient, options: ResultsSourceOptions = {}): RunResultsSource {
  const ttlMs = options.cacheTtlMs ?? FINISHED_RUN_CACHE_TTL_MS;
  const now = options.now ?? Date.now;
  const caller = options.caller ?? ON_BEHALF_OF_SELF;
  const runs = finishedRuns.get(results) ?? new Map<string, { atMs: number; items: NodeResult[] }>();
  finishedRuns.set(results, runs);
  return async (taskId, fields, where) => {
    const key = JSON.stringify([caller, taskId, fields, where ?? '']);
    const hit = runs.get(key);
    if (hit && now() - hit.atMs < ttlMs) return hit.items;
    runs.delete(key);
    // With `where`, the matching nodes' names alone: each node's other fields cost both sides
    // more to encode and decode than its name.
    const resultFields = { fields, where: where ?? '', hostsOnly: where !== undefined };
    const response = await unary(results, results.getRunStatus, { taskId, resultFields }, { metadata: onBehalfOf(caller) });
    // A results service older than `where` ignores it (an unknown field) and answers every node
    // with its fields, and with the run's node list, which a service that applied `where` leaves
    // out: such an answer is checked here, so such a service never makes a term select nodes it
    // does not hold for.
    const expr = where ? parseResultWhere(where, taskId) : undefined;
    const whereIgnored = expr !== undefined && (response.run?.nodes.length ?? 0) > 0;
    const items = whereIgnored ? response.items.filter((r) => resultMatches(expr, r)) : response.items;
    if (ttlMs > 0 && response.run && isFinalRunState(response.run.state)) {
      runs.set(key, { atMs: now(), items });
      // Oldest first (insertion order): drop beyond the bound.
      for (const old of runs.keys()) {
        if (runs.size <= FINISHED_RUN_CACHE_MAX_RUNS) break;
        runs.delete(old);
      }
    }
    return items;
  };
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

/** Reads everything one discovery query needs from one index chunk in one atomic step (bitmaps, stale nodes, one reply per leaf). */
const QUERY_SCRIPT = LuaScript.fromFile(__dirname, 'discovery-query-3plus');

/** The ZRANGEBYSCORE bounds of a numeric comparison, or undefined for operators a range cannot answer. */
function numericRange(op: CompareOp, n: number): [string, string] | undefined {
  switch (op) {
    case '==':
      return [String(n), String(n)];
    case '<':
      return ['-inf', `(${n}`];
    case '<=':
      return ['-inf', String(n)];
    case '>':
      return [`(${n}`, '+inf'];
    case '>=':
      return [String(n), '+inf'];
    default:
      return undefined;
  }
}

/**
 * The index part of one fact comparison, or undefined when it must be evaluated in memory
 * (`!=`, regexes, text ordering). The index holds the values lib/filter-language `scalarFacts`
 * lists, keyed by `indexText` and scored by `readNumber`, so these sets are exactly the nodes
 * `compareFact` accepts: a number compares numerically with the numeric facts, which are in the
 * fact's zset whatever their type (4 or "4"), and with nothing else; text equality is the set of
 * the lowercased value.
 */
function planFact(term: Extract<FilterTerm, { kind: 'FACT' }>): SetPlan | undefined {
  const n = readNumber(term.value);
  if (n !== undefined) {
    const range = numericRange(term.operator, n);
    return range && { kind: 'RANGE', path: term.path, min: range[0], max: range[1] };
  }
  if (term.operator === '==') return { kind: 'KEY', set: { of: 'fact', path: term.path, value: indexText(term.value) } };
  return undefined;
}

/**
 * The `bolt_task` data one query reads, each read at most once: the nodes of a run matching one
 * term (a slim read with `where`: only the matches travel), or every node of a
 * run with the fields its terms compare, for terms evaluated in memory on each candidate.
 */
class BoltTaskData {
  private readonly matches = new Map<string, Promise<string[]>>();
  private readonly runs = new Map<string, Promise<Map<string, BoltTaskResultFields>>>();
  private readonly loaded = new Map<string, Map<string, BoltTaskResultFields>>();

  constructor(
    private readonly exprs: FilterExpr[],
    /** Undefined where discovery has no results service: a bolt_task term is then a bad filter. */
    private readonly source: RunResultsSource | undefined,
  ) {}

  private read(taskId: string, fields: string[], where?: string): Promise<NodeResult[]> {
    if (!this.source)
      throw new InvalidArgumentError('bolt_task() terms need the results service, which this discovery has no access to', [
        { field: 'filter.compound', description: 'bolt_task() is not available here' },
      ]);
    return this.source(taskId, fields, where);
  }

  /** The hosts of the run the task is known on that satisfy `expr` (the run's bolt_task terms only). */
  matching(expr: FilterExpr): Promise<string[]> {
    const text = formatExpr(expr);
    let hosts = this.matches.get(text);
    if (!hosts) {
      const [taskId] = referencedTaskIds(expr);
      hosts = this.read(taskId, resultFieldsFor([expr], taskId), text).then((items) => items.map((r) => r.host));
      this.matches.set(text, hosts);
    }
    return hosts;
  }

  /** Every node of the run that ran the task, with the fields the query's terms compare; `lookup` answers from it afterwards. */
  run(taskId: string): Promise<Map<string, BoltTaskResultFields>> {
    let run = this.runs.get(taskId);
    if (!run) {
      run = this.read(taskId, resultFieldsFor(this.exprs, taskId)).then((items) => {
        const byHost = new Map<string, BoltTaskResultFields>();
        for (const r of items) if (ranTask(r)) byHost.set(r.host, boltTaskFields(r));
        this.loaded.set(taskId, byHost);
        return byHost;
      });
      this.runs.set(taskId, run);
    }
    return run;
  }

  /** Answers terms from the runs read with `run` (undefined: the node never ran the task). */
  readonly lookup: BoltTaskLookup = (taskId, host) => this.loaded.get(taskId)?.get(host);
}

/** The names a query's regexes are matched against, each list read at most once per query. */
class NameLists {
  private classes?: Promise<string[]>;
  private agents?: Promise<string[]>;

  constructor(private readonly index: NodeIndex) {}

  /** Every class name ever indexed, lowercased. */
  classNames(): Promise<string[]> {
    const { redis, keys } = this.index.store;
    return (this.classes ??= redis.smembers(keys.classNames()));
  }

  /** Every agent name ever indexed. */
  agentNames(): Promise<string[]> {
    const { redis, keys } = this.index.store;
    return (this.agents ??= redis.smembers(keys.agentNames()));
  }
}

/** The index plan of an expression, or undefined when a term needs in-memory evaluation. */
async function planExpr(index: NodeIndex, expr: FilterExpr, data: BoltTaskData, names: NameLists): Promise<SetPlan | undefined> {
  switch (expr.kind) {
    case 'AND':
    case 'OR': {
      const parts = await Promise.all(expr.operands.map((o) => planExpr(index, o, data, names)));
      if (parts.some((p) => p === undefined)) return undefined;
      return { kind: expr.kind, parts: parts as SetPlan[] };
    }
    case 'NOT': {
      const part = await planExpr(index, expr.operand, data, names);
      return part && { kind: 'NOT', part };
    }
    case 'CLASS':
      return { kind: 'KEY', set: { of: 'class', name: expr.name.toLowerCase() } };
    case 'CLASS_REGEX': {
      const re = filterRegex(expr.pattern);
      return { kind: 'OR', parts: (await names.classNames()).filter((n) => re.test(n)).map((n) => ({ kind: 'KEY', set: { of: 'class', name: n } })) };
    }
    case 'AGENT':
      return { kind: 'KEY', set: { of: 'agent', name: expr.name } };
    case 'AGENT_REGEX': {
      const re = filterRegex(expr.pattern, true);
      return { kind: 'OR', parts: (await names.agentNames()).filter((n) => re.test(n)).map((n) => ({ kind: 'KEY', set: { of: 'agent', name: n } })) };
    }
    case 'IDENTITY': {
      const id = index.names.idOf(expr.name);
      return { kind: 'IDS', ids: id === undefined ? [] : [id] };
    }
    case 'IDENTITY_REGEX': {
      // Matched against the scheduler's copy of every identity, far cheaper than asking Redis
      // for the names: only those with the regex's literal prefix, and once per regex (the
      // copy keeps the answer and tests only identities added since), in one pass over them
      // all where the regex has an automaton.
      const re = filterRegex(expr.pattern, true);
      const packed = re.testPacked && re.testPacked.bind(re);
      return { kind: 'BITS', bits: index.names.matching(`regex ${expr.pattern}`, (name) => re.test(name), anchoredLiteralPrefix(expr.pattern), packed) };
    }
    case 'FACT':
      return planFact(expr);
    case 'BOLT_TASK': {
      // The results service evaluates the term and sends the matching nodes alone. A node the
      // task is not known on (outside the run, or never ran it) matches only when the term
      // holds for "never ran" (`known == false`): then the term holds for every node except
      // the known ones that fail it, which are what is asked for.
      const outsiders = evaluate(expr, { identity: '', facts: {}, classes: [], agents: [] }, () => undefined);
      if (!outsiders) return { kind: 'MEMBERS', ids: await data.matching(expr) };
      return { kind: 'NOT', part: { kind: 'MEMBERS', ids: await data.matching({ kind: 'NOT', operand: expr }) } };
    }
  }
}

/**
 * Plans a compiled filter (lib/filter-language `compileFilter`) against the index. Each operand
 * of a top-level AND is planned on its own, so a term the index cannot answer leaves only its
 * own operand to memory, where `evaluate` answers it on the candidates the others left.
 * Identities are resolved against the scheduler's copy of the identity list; class and agent
 * regexes against the lists of names ever indexed.
 */
export async function planFilter(index: NodeIndex, query: FilterExpr, runResults?: RunResultsSource): Promise<FilterPlan> {
  await index.names.refresh();
  const names = new NameLists(index);
  const data = new BoltTaskData([query], runResults);
  const parts: SetPlan[] = [];
  const residual: NodeMatcher[] = [];
  for (const operand of query.kind === 'AND' ? query.operands : [query]) {
    const planned = await planExpr(index, operand, data, names);
    if (planned) parts.push(planned);
    else {
      // Evaluated on each candidate: the runs it names are read whole first.
      await Promise.all(referencedTaskIds(operand).map((id) => data.run(id)));
      residual.push((node) => evaluate(operand, node, data.lookup));
    }
  }
  return { set: parts.length === 0 ? { kind: 'ALL' } : { kind: 'AND', parts }, residual };
}

/** What the query scripts read besides the leaves, joined over the chunks: bitmaps of `count` ids. */
interface IndexRead {
  count: number;
  all: NodeBitmap;
  online: NodeBitmap;
  stale: string[];
  /** Per dead replica, the nodes it held. */
  dead: NodeBitmap[];
}

/** A plan's leaves as the query script reads them, in order, each with its answer (joined over the chunks) once read. */
class LeafReader {
  private readonly leaves: Array<Extract<SetPlan, { kind: 'KEY' | 'RANGE' }>> = [];
  private readonly slot = new Map<string, number>();
  private answers: NodeBitmap[] = [];

  constructor(plan: SetPlan) {
    this.collect(plan);
  }

  private static id(leaf: Extract<SetPlan, { kind: 'KEY' | 'RANGE' }>): string {
    return leaf.kind === 'KEY' ? `K ${JSON.stringify(leaf.set)}` : `R ${JSON.stringify([leaf.path, leaf.min, leaf.max])}`;
  }

  private collect(plan: SetPlan): void {
    switch (plan.kind) {
      case 'KEY':
      case 'RANGE': {
        const id = LeafReader.id(plan);
        if (!this.slot.has(id)) {
          this.slot.set(id, this.leaves.length);
          this.leaves.push(plan);
        }
        return;
      }
      case 'AND':
      case 'OR':
        for (const p of plan.parts) this.collect(p);
        return;
      case 'NOT':
        this.collect(plan.part);
        return;
      default:
        return;
    }
  }

  /** One chunk's script call. */
  private readChunk(index: NodeIndex, chunk: number, freshSinceMs: number, deadReplicas: string[]): Promise<unknown[]> {
    const { redis, keys } = index.store;
    const scriptKeys = [keys.allNodesBitmap(chunk), keys.onlineBitmap(chunk), keys.online(chunk)];
    const args: Array<string | Buffer> = [
      String(freshSinceMs),
      this.leaves.map((l) => (l.kind === 'KEY' && l.set.of === 'fact' ? 'F' : l.kind[0])).join(''),
      String(deadReplicas.length),
    ];
    for (const leaf of this.leaves) {
      if (leaf.kind === 'KEY') {
        const set = membershipKey(keys, chunk, leaf.set);
        scriptKeys.push(keys.bitmapOf(set), set);
        const rare = keys.rareFactOf(set);
        if (rare) {
          scriptKeys.push(rare.bucketKey);
          args.push(rare.digest);
        }
      } else {
        scriptKeys.push(keys.factNumber(chunk, leaf.path));
        args.push(leaf.min, leaf.max);
      }
    }
    for (const id of deadReplicas) scriptKeys.push(keys.ownerBitmap(chunk, id));
    return QUERY_SCRIPT.runBuffer(redis, scriptKeys, args) as Promise<unknown[]>;
  }

  /**
   * Runs the query script on every chunk holding the ids assigned so far, in parallel, and
   * joins the answers: bitmaps (a range's too) placed at their chunk's ids, a set's members and
   * the offsets of a rare fact value's records turned into bits.
   */
  async read(index: NodeIndex, freshSinceMs: number, deadReplicas: string[]): Promise<IndexRead> {
    const chunks = await index.chunkCount();
    const count = index.names.count;
    const replies = await Promise.all(Array.from({ length: chunks }, (_, c) => this.readChunk(index, c, freshSinceMs, deadReplicas)));
    const joined = (part: (reply: unknown[]) => Buffer) => joinChunks(replies.map(part), count);
    this.answers = this.leaves.map((leaf, l) => {
      const out = joined((r) => (r[4 + l] as Buffer[])[0]);
      const set = (id: number | undefined) => {
        if (id !== undefined && id < count) out[id >> 3] |= 0x80 >> (id & 7);
      };
      replies.forEach((r, c) => {
        const [, members, offsets] = r[4 + l] as [Buffer, Buffer[], number[] | undefined];
        for (const member of members) set(index.names.idOf(member.toString()));
        for (const offset of offsets ?? []) set(c * INDEX_CHUNK_NODES + Number(offset));
      });
      return out;
    });
    return {
      count,
      all: joined((r) => r[0] as Buffer),
      online: joined((r) => r[1] as Buffer),
      stale: replies.flatMap((r) => (r[2] as Buffer[]).map((b) => b.toString())),
      dead: deadReplicas.map((_, d) => joined((r) => (r[3] as Buffer[])[d])),
    };
  }

  /** The nodes of a leaf, as read. */
  answer(leaf: Extract<SetPlan, { kind: 'KEY' | 'RANGE' }>): NodeBitmap {
    return this.answers[this.slot.get(LeafReader.id(leaf))!];
  }
}

/** Evaluates a plan over the bitmaps the query script read; every answer is a fresh bitmap of `count` ids. */
function evaluatePlan(plan: SetPlan, leaves: LeafReader, all: NodeBitmap, count: number, names: NodeIndex['names']): NodeBitmap {
  const idsOfNames = (list: Iterable<string>): number[] => {
    const ids: number[] = [];
    for (const name of list) {
      const id = names.idOf(name);
      if (id !== undefined) ids.push(id);
    }
    return ids;
  };
  const walk = (p: SetPlan): NodeBitmap => {
    switch (p.kind) {
      case 'ALL':
        return fitBitmap(all, count);
      case 'KEY':
      case 'RANGE':
        return fitBitmap(leaves.answer(p), count);
      case 'MEMBERS':
        return bitmapOfIds(idsOfNames(p.ids), count);
      case 'IDS':
        return bitmapOfIds(p.ids, count);
      case 'BITS':
        return fitBitmap(p.bits, count);
      case 'NOT':
        return andNotInto(fitBitmap(all, count), walk(p.part));
      case 'AND': {
        if (p.parts.length === 0) return fitBitmap(all, count);
        const [first, ...rest] = p.parts;
        const acc = walk(first);
        for (const q of rest) {
          // A NOT operand subtracts its inner set instead of building its complement.
          if (q.kind === 'NOT') andNotInto(acc, walk(q.part));
          else andInto(acc, walk(q));
        }
        return acc;
      }
      case 'OR': {
        const acc = emptyBitmap(count);
        for (const q of p.parts) orInto(acc, walk(q));
        return acc;
      }
    }
  };
  return andInto(walk(plan), fitBitmap(all, count));
}

/**
 * Runs a compiled filter against the index: online matches, and the count (or list) of offline
 * ones. Online means the connected flag, a heartbeat within STALE_AFTER_HEARTBEATS intervals
 * and a live owner (the lease of the replica holding the node's stream has not ended), as
 * `NodeIndex.isOnline`.
 */
export async function runDiscovery(index: NodeIndex, query: FilterExpr, options: RunDiscoveryOptions = {}): Promise<DiscoveryResult> {
  const plan = await planFilter(index, query, options.runResults);
  const nowMs = options.nowMs ?? Date.now();
  const leaves = new LeafReader(plan.set);
  const deadReplicas = await index.deadReplicas();
  // Over the ids the copy of the names holds when the chunks are read: a node given its id
  // since is left out, as it would be had the query come a moment earlier.
  const read = await leaves.read(index, index.freshSinceMs(nowMs), deadReplicas);
  const { count, all } = read;
  const matched = evaluatePlan(plan.set, leaves, all, count, index.names);
  if (plan.residual.length > 0) {
    // Terms the index cannot answer: load the candidates and finish in memory.
    const nodes = (await index.load(index.names.namesOf(matched))).filter((n) => plan.residual.every((r) => r(n)));
    const dead = new Set(deadReplicas);
    const online = nodes.filter((n) => index.isOnline(n, nowMs, dead)).map((n) => n.identity);
    const onlineSet = new Set(online);
    const offline = nodes.map((n) => n.identity).filter((id) => !onlineSet.has(id));
    return { online, offlineCount: offline.length, offline: options.listOffline ? offline : [] };
  }
  // Online = in the online bitmap (flag set) and not stale; stale-but-flagged nodes are few (an
  // agent that died without its stream ending), so they are read by name and cleared here.
  const online = read.online;
  for (const name of read.stale) {
    const id = index.names.idOf(name);
    if (id !== undefined) clearBit(online, id);
  }
  for (const owned of read.dead) andNotInto(online, owned);
  const total = countBits(matched);
  const onlineMatched = andInto(fitBitmap(matched, count), online);
  const onlineNames = index.names.namesOf(onlineMatched);
  const offline = options.listOffline && total > onlineNames.length ? index.names.namesOf(andNotInto(matched, online)) : [];
  return { online: onlineNames, offlineCount: total - onlineNames.length, offline };
}
