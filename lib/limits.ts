import { BatonError, InvalidArgumentError, type FieldViolation } from './errors';
import { MAX_FILTER_LENGTH_CHARS } from './filter-language';
import { quote } from './quote';
import { MAX_INPUT_BYTES } from './task-input';

/**
 * The size of everything that arrives over the network, in one table. Every string and list
 * of every request (and of every message an agent sends on its Connect stream) is checked
 * against its row before any handler looks anything up (lib/request-limits.ts), so a value
 * far larger than any real one (a 10 MiB task name, a million filter terms) costs one length
 * comparison and gets INVALID_ARGUMENT naming the field and the limit. Formats (what
 * characters a name may hold) are checked after, by each service. docs/security.md "Limits"
 * lists every row.
 */

/** One limit: the most `unit`s a field may hold, and, for fields of a fixed form, what is expected. */
export interface Limit {
  readonly max: number;
  readonly unit: 'characters' | 'entries' | 'levels';
  readonly expected?: string;
}

/**
 * Text of the discovery index (fact paths and values, class and agent names), and of filter
 * terms that are compared with it, in characters: each indexed text becomes part of a Redis key.
 */
const INDEXED_TEXT_CHARS = 16_384;

/** Every limit, by name. Rows are referenced by name from lib/request-limits.ts and docs/security.md. */
export const LIMITS = {
  /** A canonical task name; Puppet sets no bound, real ones are a few dozen characters. */
  taskName: { max: 256, unit: 'characters', expected: 'a task name <module>::<task>' },
  environment: { max: 128, unit: 'characters', expected: 'an environment name such as production' },
  taskId: { max: 32, unit: 'characters', expected: '32 lowercase hex characters' },
  /** A node identity (certname), as a DNS name. */
  identity: { max: 253, unit: 'characters', expected: 'a node identity' },
  /** A caller id (`cert=<name>`), as lib/peer-identity.ts makes them. */
  caller: { max: 256, unit: 'characters' },
  /** A POSIX user name (Choria's DDL limit). */
  runAs: { max: 32, unit: 'characters', expected: 'a user name' },
  requestId: { max: 128, unit: 'characters', expected: '1-128 characters of [A-Za-z0-9._-]' },
  /** Page tokens are made by the services (a cursor of a few names), far shorter than this. */
  pageToken: { max: 1_024, unit: 'characters', expected: 'the next_page_token of the previous page' },
  /** An event id, `<ms>-<seq>` of at most 20 digits each. */
  resumeToken: { max: 41, unit: 'characters', expected: 'an event id such as 1700000000000-0' },
  taskFilePath: { max: 1_024, unit: 'characters', expected: 'a task file path such as acme/tasks/restart.sh' },
  sha256: { max: 64, unit: 'characters', expected: '64 lowercase hex characters' },
  /** Task input as sent (the byte limit, MAX_INPUT_BYTES, is checked by lib/task-input.ts). */
  inputJson: { max: MAX_INPUT_BYTES, unit: 'characters' },
  /** Task input as stored with a run: sensitive values replaced by a longer marker. */
  storedInputJson: { max: 2 * MAX_INPUT_BYTES, unit: 'characters' },
  /** Identities listed in a filter (`-I`): a whole fleet may be named. */
  filterIdentities: { max: 100_000, unit: 'entries' },
  filterClasses: { max: 1_000, unit: 'entries' },
  filterAgents: { max: 1_000, unit: 'entries' },
  filterFacts: { max: 1_000, unit: 'entries' },
  filterCompound: { max: 64, unit: 'entries' },
  /** One identity, class, agent or fact filter term (a name or a /regex/), or a fact value: no longer than what the index holds. */
  filterTerm: { max: INDEXED_TEXT_CHARS, unit: 'characters' },
  compoundExpression: { max: MAX_FILTER_LENGTH_CHARS, unit: 'characters' },
  resultFields: { max: 64, unit: 'entries' },
  resultFieldName: { max: 64, unit: 'characters', expected: 'a NodeResult field name such as exitcode' },
  resultWhere: { max: 4_096, unit: 'characters' },
  /** Nodes of one run: the largest fleet Baton is built for. */
  runNodes: { max: 100_000, unit: 'entries' },
  /** Results in one RecordNodeResults. */
  recordResults: { max: 10_000, unit: 'entries' },
  /** Hosts one GetRunProgress looks up: a page, so that one call stays small whatever the run's size. */
  progressHosts: { max: 1_000, unit: 'entries' },
  /** A result's stdout or stderr: the agent's largest output cap (2 MiB) and its truncation note. */
  resultOutput: { max: 2 * 1024 * 1024 + 64 * 1024, unit: 'characters' },
  /** A reason or error line: a run's error, a state change's reason, a download error, a result's statusmsg. */
  errorText: { max: 16_384, unit: 'characters' },
  /**
   * Nesting of a facts tree or a result value (protobuf Struct). The protobuf decoder refuses
   * messages nested past its recursion limit (a Struct about 30 levels deep inside a
   * ConnectRequest) before any check sees them; this keeps below that on every path.
   */
  structDepth: { max: 24, unit: 'levels' },
  traceContextEntries: { max: 16, unit: 'entries' },
  /** A trace context key or value (W3C traceparent is 55 characters, tracestate at most 512). */
  traceContextText: { max: 1_024, unit: 'characters' },
  agentVersion: { max: 256, unit: 'characters' },
  /** Results re-sent in a Hello (the agent also keeps them under 4 MiB). */
  helloResults: { max: 10_000, unit: 'entries' },
  nodeClasses: { max: 10_000, unit: 'entries' },
  nodeAgents: { max: 256, unit: 'entries' },
  /** Scalar facts (leaves of the facts tree) of one node; counted by the scheduler, which flattens the tree. */
  nodeFactValues: { max: 20_000, unit: 'entries' },
  indexedText: { max: INDEXED_TEXT_CHARS, unit: 'characters' },
  /** The service name of a grpc.health.v1 request. */
  healthService: { max: 256, unit: 'characters' },
  /** Any text of a server reflection request (file and symbol names). */
  reflectionText: { max: 1_024, unit: 'characters' },
} as const satisfies Record<string, Limit>;

/** The name of a row of LIMITS. */
export type LimitName = keyof typeof LIMITS;

/** Reason in the ErrorInfo of a request refused for a value over its limit. */
export const LIMIT_EXCEEDED_REASON = 'LIMIT_EXCEEDED';

/** How deep a decoded Struct value (plain objects and arrays) nests; stops counting past `stopAt`. */
export function structDepth(value: unknown, stopAt: number = LIMITS.structDepth.max + 1): number {
  let depth = 0;
  let level: unknown[] = [value];
  while (level.length > 0 && depth < stopAt) {
    const next: unknown[] = [];
    for (const v of level) {
      // One push per child: spreading a list of a million values would overflow the stack.
      if (v !== null && typeof v === 'object') for (const child of Array.isArray(v) ? v : Object.values(v)) next.push(child);
    }
    if (next.length === 0) break;
    depth += 1;
    level = next;
  }
  return depth;
}

/**
 * Collects the fields of one message that are over their limits. Lists are counted before
 * their entries are looked at, so the work is bounded by the limits, not by the message.
 */
export class LimitChecker {
  readonly violations: FieldViolation[] = [];

  private over(field: string, size: number, limit: Limit, shown?: string): void {
    const expected = limit.expected ? ` (expected ${limit.expected})` : '';
    const what =
      shown === undefined
        ? `${size} ${limit.unit}`
        : `${shown} ${limit.unit === 'levels' ? 'nests' : 'is'} ${size} ${limit.unit}${limit.unit === 'levels' ? ' deep' : ' long'}`;
    this.violations.push({ field, description: `${what}; at most ${limit.max} ${limit.unit} are accepted${expected}` });
  }

  /** A string of at most `limit` characters. */
  text(field: string, value: string | undefined, limit: Limit): void {
    if (value !== undefined && value.length > limit.max) this.over(field, value.length, limit, quote(value));
  }

  /** A list of at most `limit` entries; true when its entries may be looked at. */
  list(field: string, items: readonly unknown[] | undefined, limit: Limit): boolean {
    if (items === undefined || items.length <= limit.max) return true;
    this.violations.push({ field, description: `has ${items.length} entries; at most ${limit.max} entries are accepted` });
    return false;
  }

  /** A list of strings: at most `count` entries of at most `each` characters. */
  texts(field: string, items: readonly string[] | undefined, count: Limit, each: Limit): void {
    if (items && this.list(field, items, count)) items.forEach((v, i) => this.text(`${field}[${i}]`, v, each));
  }

  /** A map of strings: at most `count` entries, keys and values of at most `each` characters. */
  map(field: string, value: Readonly<Record<string, string>> | undefined, count: Limit, each: Limit): void {
    const entries = Object.entries(value ?? {});
    if (!this.list(field, entries, count)) return;
    for (const [k, v] of entries) {
      this.text(`${field} key`, k, each);
      this.text(`${field}[${JSON.stringify(k.slice(0, 40))}]`, v, each);
    }
  }

  /** A decoded Struct nesting at most LIMITS.structDepth levels. */
  struct(field: string, value: unknown): void {
    const depth = structDepth(value);
    if (depth > LIMITS.structDepth.max)
      this.violations.push({
        field,
        description: `nests more than ${LIMITS.structDepth.max} levels deep; at most ${LIMITS.structDepth.max} levels are accepted`,
      });
  }

  /** Every string found in `value` (a decoded message of a shape not known here), up to two levels down. */
  anyText(field: string, value: unknown, limit: Limit, levels = 2): void {
    if (typeof value === 'string') this.text(field, value, limit);
    else if (levels > 0 && value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) this.anyText(field ? `${field}.${k}` : k, v, limit, levels - 1);
    }
  }

  /** INVALID_ARGUMENT naming the first field over its limit (all of them in the details); undefined when none is. */
  error(): BatonError | undefined {
    if (this.violations.length === 0) return undefined;
    const [first] = this.violations;
    const more = this.violations.length > 1 ? ` (and ${this.violations.length - 1} more field${this.violations.length > 2 ? 's' : ''} over their limits)` : '';
    return new InvalidArgumentError(`${first.field} ${first.description}${more}`, this.violations, LIMIT_EXCEEDED_REASON, { field: first.field });
  }
}
