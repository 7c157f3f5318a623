import Ajv, { type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { evaluate, FilterSyntaxError, isRegexEntry, parseCompound, referencedTaskIds, type FilterExpr, type NodeView } from './filter-language';
import { linearRegex, RegexSyntaxError, type LinearRegex } from './linear-regex';

/**
 * The authorization policy (docs/security.md "Authorization policy"), in the
 * spirit of Choria's action policies (docs/choria-compat.md §7): an ordered list of allow/deny rules
 * by caller, action, task, environment and nodes; the first rule that matches a request decides,
 * and when none does the policy's default does (deny unless the file says `default: allow`).
 *
 * Choria authorized every run twice (the action, then the task name as the action) and its
 * `bolt_task` data plugin had no check at all; here one rule list covers the four actions,
 * reads of results included.
 */

/** What a caller asks to do: run a task, cancel a run, discover nodes, read runs and results. */
export type PolicyAction = 'run' | 'cancel' | 'discover' | 'read';

/** Every action, in the order the documentation lists them. */
export const POLICY_ACTIONS: readonly PolicyAction[] = ['run', 'cancel', 'discover', 'read'];

/** What a rule, or the default, does with a request it matches. */
export type PolicyEffect = 'allow' | 'deny';

/** A request to authorize. */
export interface PolicyRequest {
  /** The caller id (`cert=alice`; `user=...` in insecure dev mode). */
  caller: string;
  action: PolicyAction;
  /** The task, when the request has one (never for discover; ListRuns only with a task filter). */
  task?: string;
  /** The environment, when the request has one. */
  environment?: string;
  /**
   * Every node the request selects (a run's online and offline matches, a cancelled run's nodes,
   * discovery's matches), when the caller loaded them; see `Policy.needsNodes`. A rule with
   * `nodes` never matches a request without them.
   */
  nodes?: readonly NodeView[];
  /** What the request is about, for the denial message (`run 0123...`); default from the task. */
  subject?: string;
}

/** The outcome of `Policy.decide`. */
export interface PolicyDecision {
  allowed: boolean;
  /** The rule that decided; undefined when the default did. */
  rule?: string;
  /** One line for the caller when denied (names caller, action, task/env and the rule); empty when allowed. */
  message: string;
}

/** A policy problem (bad file, bad rule), as one line. */
export class PolicyError extends Error {}

/** One compiled rule. */
interface Rule {
  name: string;
  effect: PolicyEffect;
  callers?: ((caller: string) => boolean)[];
  actions?: Set<PolicyAction>;
  tasks?: LinearRegex[];
  environments?: LinearRegex[];
  /** The `nodes` filter as written, and parsed. */
  nodes?: { text: string; expr: FilterExpr };
}

/** The YAML document, as the schema admits it. */
interface PolicyDocument {
  default?: PolicyEffect;
  rules?: RuleDocument[];
}

interface RuleDocument {
  name: string;
  effect: PolicyEffect;
  callers?: string[];
  actions?: PolicyAction[];
  tasks?: string[];
  environments?: string[];
  nodes?: string;
}

/** A list field: a non-empty list (one string is accepted too, as a list of one: `normalizeLists`). */
const listOf = (items: Record<string, unknown>) => ({ type: 'array', minItems: 1, items });

/** The rule fields that take a list. */
const LIST_FIELDS = ['callers', 'actions', 'tasks', 'environments'] as const;

/** `tasks: acme::*` means `tasks: ['acme::*']`: wraps a string in the list fields of each rule. */
function normalizeLists(doc: Record<string, unknown>): void {
  if (!Array.isArray(doc.rules)) return;
  for (const rule of doc.rules as unknown[]) {
    if (typeof rule !== 'object' || rule === null) continue;
    const r = rule as Record<string, unknown>;
    for (const f of LIST_FIELDS) if (typeof r[f] === 'string') r[f] = [r[f]];
  }
}

/** Glob of tasks and environments: names' characters and `*`; `::` only between parts. */
const GLOB = '^[a-z0-9_*]+(::[a-z0-9_*]+)?$';

const SCHEMA = {
  type: 'object',
  properties: {
    default: { enum: ['allow', 'deny'] },
    rules: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$' },
          effect: { enum: ['allow', 'deny'] },
          callers: listOf({ type: 'string', minLength: 1 }),
          // Action names are checked after the schema, for a message listing them.
          actions: listOf({ type: 'string' }),
          tasks: listOf({ type: 'string', pattern: GLOB }),
          environments: listOf({ type: 'string', pattern: GLOB }),
          nodes: { type: 'string', minLength: 1 },
        },
        required: ['name', 'effect'],
        additionalProperties: false,
      },
    },
  },
  additionalProperties: false,
} as const;

const ajv = new Ajv({ allErrors: false, strict: true });
const validateDocument = ajv.compile<PolicyDocument>(SCHEMA);

/**
 * A task or environment glob as an anchored regex: `*` matches any run of characters, `::`
 * included. Linear time (lib/linear-regex.ts): a glob of many stars against an operator's long
 * task name would make a backtracking engine try every split.
 */
function globRegex(glob: string): LinearRegex {
  return linearRegex(
    `^${glob
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
}

/** Where a schema problem is: `rule 2 'web' field callers[0]`, or the top-level key. */
function describeSchemaError(err: ErrorObject, doc: unknown): string {
  const path = err.instancePath.split('/').slice(1);
  const rules = (doc as { rules?: unknown }).rules;
  if (path[0] === 'rules' && path.length >= 2) {
    const index = Number(path[1]);
    const rule = Array.isArray(rules) ? (rules[index] as { name?: unknown } | undefined) : undefined;
    const named = typeof rule?.name === 'string' ? ` '${rule.name}'` : '';
    const field = path
      .slice(2)
      .map((p, i) => (i === 0 ? p : `[${p}]`))
      .join('');
    if (err.keyword === 'additionalProperties')
      return `rule ${index + 1}${named}: unknown key '${String(err.params.additionalProperty)}'; expected name, effect, callers, actions, tasks, environments, nodes`;
    if (err.keyword === 'required') return `rule ${index + 1}${named}: missing '${String(err.params.missingProperty)}'`;
    return `rule ${index + 1}${named}: ${field} ${fieldExpectation(path[2], err)}`;
  }
  if (err.keyword === 'additionalProperties') return `unknown key '${String(err.params.additionalProperty)}'; expected default and rules`;
  return `${path.join('.') || 'the document'} ${err.message ?? 'is invalid'}${path[0] === 'default' ? ' (allow or deny)' : ''}`;
}

/** What a rule field must be, in words. */
function fieldExpectation(field: string | undefined, err: ErrorObject): string {
  switch (field) {
    case 'name':
      return 'must be 1-128 characters of [A-Za-z0-9_.:-], starting with a letter or digit';
    case 'effect':
      return 'must be allow or deny';
    case 'tasks':
    case 'environments':
      return err.keyword === 'pattern'
        ? 'must be a name or a glob of [a-z0-9_*] parts, like acme::* or production'
        : 'must be a name or glob, or a non-empty list of them';
    case 'callers':
      return 'must be a caller id (cert=alice) or /regex/, or a non-empty list of them';
    case 'actions':
      return `must be one of ${POLICY_ACTIONS.join(', ')}, or a non-empty list of them`;
    case 'nodes':
      return 'must be a compound filter, like "role=web and not class::db"';
    default:
      return err.message ?? 'is invalid';
  }
}

/**
 * A loaded policy: `Policy.parse(yamlText, source)` validates strictly and throws one
 * PolicyError line naming the rule (number and name) and field; `decide` answers requests.
 */
export class Policy {
  private constructor(
    /** Where the policy came from (its file path), named in default denials. */
    readonly source: string,
    readonly defaultEffect: PolicyEffect,
    private readonly rules: Rule[],
  ) {}

  /** Parses and validates a policy document; throws PolicyError (one line, prefixed with `source`). */
  static parse(text: string, source: string): Policy {
    const fail = (line: string): never => {
      throw new PolicyError(`policy ${source}: ${line}`);
    };
    let doc: unknown;
    try {
      doc = parseYaml(text, { uniqueKeys: true }) ?? {};
    } catch (err) {
      return fail(`not valid YAML: ${(err as Error).message.split('\n')[0]}`);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return fail('expected a mapping with default and rules');
    normalizeLists(doc as Record<string, unknown>);
    if (!validateDocument(doc)) return fail(describeSchemaError(validateDocument.errors![0], doc));
    const names = new Set<string>();
    const rules = (doc.rules ?? []).map((r, i): Rule => {
      const where = `rule ${i + 1} '${r.name}'`;
      if (names.has(r.name)) fail(`${where}: name is used by an earlier rule; rule names must be unique`);
      names.add(r.name);
      const actions = r.actions;
      const unknown = actions?.find((a) => !POLICY_ACTIONS.includes(a));
      if (unknown !== undefined) fail(`${where}: actions has '${String(unknown)}'; expected ${POLICY_ACTIONS.join(', ')}`);
      const callers = r.callers?.map((entry, j) => {
        if (!isRegexEntry(entry)) return (caller: string) => caller === entry;
        // `/regex/` entries are unanchored and RE2 syntax, as in filters.
        try {
          const re = linearRegex(entry.slice(1, -1));
          return (caller: string) => re.test(caller);
        } catch (err) {
          if (!(err instanceof RegexSyntaxError)) throw err;
          return fail(`${where}: callers[${j}] ${entry} is not a valid regular expression: ${err.message}`);
        }
      });
      let nodes: Rule['nodes'];
      if (r.nodes !== undefined) {
        try {
          nodes = { text: r.nodes, expr: parseCompound(r.nodes) };
        } catch (err) {
          if (!(err instanceof FilterSyntaxError)) throw err;
          fail(`${where}: nodes: ${err.message}`);
        }
        // A rule is decided from the node index alone: another run's results are no property of a node.
        if (nodes && referencedTaskIds(nodes.expr).length > 0) fail(`${where}: nodes may not use bolt_task(); expected facts, classes and fact() terms`);
      }
      return {
        name: r.name,
        effect: r.effect,
        callers,
        actions: actions && new Set(actions),
        tasks: r.tasks?.map(globRegex),
        environments: r.environments?.map(globRegex),
        nodes,
      };
    });
    return new Policy(source, doc.default ?? 'deny', rules);
  }

  /** Number of rules. */
  get size(): number {
    return this.rules.length;
  }

  /**
   * True when a rule with `nodes` could decide `request` (its caller, action, task and
   * environment match): only then must the caller load the selected nodes from the index.
   */
  needsNodes(request: PolicyRequest): boolean {
    return request.action !== 'read' && this.rules.some((r) => r.nodes !== undefined && this.matchesApartFromNodes(r, request));
  }

  /** The first rule matching `request` decides; none matching, the default does. */
  decide(request: PolicyRequest): PolicyDecision {
    let nodeHint = '';
    for (const rule of this.rules) {
      if (!this.matchesApartFromNodes(rule, request)) continue;
      if (rule.nodes) {
        // `nodes` never matches a read: a run's results are read whatever nodes it ran on.
        if (request.action === 'read' || !request.nodes) continue;
        const outside = request.nodes.find((n) => !evaluate(rule.nodes!.expr, n));
        if (outside !== undefined) {
          if (rule.effect === 'allow' && nodeHint === '')
            nodeHint = `; rule '${rule.name}' allows it only where every node matches ${rule.nodes.text}, and ${outside.identity} does not`;
          continue;
        }
      }
      if (rule.effect === 'allow') return { allowed: true, rule: rule.name, message: '' };
      return { allowed: false, rule: rule.name, message: `${describeRequest(request)}: rule '${rule.name}' denies it` };
    }
    if (this.defaultEffect === 'allow') return { allowed: true, message: '' };
    return { allowed: false, message: `${describeRequest(request)}: no rule allows it (policy ${this.source}, default deny)${nodeHint}` };
  }

  private matchesApartFromNodes(rule: Rule, request: PolicyRequest): boolean {
    if (rule.callers && !rule.callers.some((m) => m(request.caller))) return false;
    if (rule.actions && !rule.actions.has(request.action)) return false;
    // A rule naming tasks or environments matches only requests that have one: never a
    // discover, nor a ListRuns without a task filter.
    if (rule.tasks && (request.task === undefined || !rule.tasks.some((re) => re.test(request.task!)))) return false;
    if (rule.environments && (request.environment === undefined || !rule.environments.some((re) => re.test(request.environment!)))) return false;
    return true;
  }
}

/** `cert=bob may not run acme::restart in production` and the like. */
export function describeRequest(request: PolicyRequest): string {
  const what = request.subject ?? (request.action === 'discover' ? 'nodes' : (request.task ?? (request.action === 'read' ? 'runs' : 'tasks')));
  const where = request.environment !== undefined && request.subject === undefined ? ` in ${request.environment}` : '';
  return `${request.caller} may not ${request.action} ${what}${where}`;
}
