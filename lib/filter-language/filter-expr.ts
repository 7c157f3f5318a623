/**
 * The AST of Baton's filter language (docs/choria-compat.md §6.3, §6.4). Produced by
 * `parseCompound`, printed by `formatExpr`, evaluated by `evaluate`, planned over by an index
 * through `termsOf` / `foldExpr`. Every node is a plain JSON-able object with a string `kind`:
 *
 * - `AND` / `OR`: two or more operands when parsed; chains and nested same-kind groups are
 *   flattened, so `a and (b and c)` is one `AND` of three. A compiled request (compileFilter)
 *   may hold an `AND` of one, or of none (every node).
 * - `NOT`: one operand (`not x` and `!x` are the same node).
 * - `CLASS`: a class name, matched exactly and case-insensitively (a bare word).
 * - `CLASS_REGEX`: a class regular expression (`/web/`), case-insensitive.
 * - `IDENTITY` / `IDENTITY_REGEX`: the node's identity, exact or a case-sensitive regex
 *   (`identity('web1')`, `identity('/^web/')`, and every `-I` entry).
 * - `AGENT` / `AGENT_REGEX`: an agent the node offers, exact or a case-sensitive regex
 *   (`agent('rpcutil')`, and every `-A` entry).
 * - `FACT`: `path <operator> value` over a dotted fact path (`os.family=Debian`, `fact('a.b') > 1`).
 * - `BOLT_TASK`: `bolt_task('<id>').<field> <operator> value`, a field of a node's result of an
 *   earlier task run (docs/choria-compat.md §6.2).
 */

/**
 * A comparison operator. `=~` / `!~` take a regular expression (the term's `value` is then its
 * source, without slashes); `!~` only arises from `!= /re/` (docs/choria-compat.md §6.3: `/re/`
 * with `!=` is `!=~`). Aliases are normalised when parsing: `=` → `==`, `=<` → `<=`, `=>` → `>=`.
 */
export type CompareOp = '==' | '!=' | '<' | '<=' | '>' | '>=' | '=~' | '!~';

/** Every CompareOp, for iteration in tests and planners. */
export const COMPARE_OPS: readonly CompareOp[] = ['==', '!=', '<', '<=', '>', '>=', '=~', '!~'];

/** The fields of a `bolt_task` result (docs/choria-compat.md §6.2, without `spool`, which Baton has no use for). */
export type BoltTaskField =
  'known' | 'task' | 'caller' | 'exitcode' | 'completed' | 'runtime' | 'start_time' | 'stdout' | 'stderr' | 'wrapper_spawned' | 'wrapper_error' | 'wrapper_pid';

/** Every BoltTaskField, in the order of docs/choria-compat.md §6.2. */
export const BOLT_TASK_FIELDS: readonly BoltTaskField[] = [
  'known',
  'task',
  'caller',
  'exitcode',
  'completed',
  'runtime',
  'start_time',
  'stdout',
  'stderr',
  'wrapper_spawned',
  'wrapper_error',
  'wrapper_pid',
];

/** A class name, exact and case-insensitive. */
export interface ClassTerm {
  kind: 'CLASS';
  name: string;
}

/** A class regular expression (source without slashes), case-insensitive. */
export interface ClassRegexTerm {
  kind: 'CLASS_REGEX';
  pattern: string;
}

/** A node identity, exact and case-sensitive. */
export interface IdentityTerm {
  kind: 'IDENTITY';
  name: string;
}

/** A node identity regular expression (source without slashes), case-sensitive. */
export interface IdentityRegexTerm {
  kind: 'IDENTITY_REGEX';
  pattern: string;
}

/** An agent the node offers, exact and case-sensitive. */
export interface AgentTerm {
  kind: 'AGENT';
  name: string;
}

/** An agent regular expression (source without slashes), case-sensitive. */
export interface AgentRegexTerm {
  kind: 'AGENT_REGEX';
  pattern: string;
}

/** A fact comparison; `path` is dotted (`os.family`), `value` the operand text or regex source. */
export interface FactTerm {
  kind: 'FACT';
  path: string;
  operator: CompareOp;
  value: string;
}

/** A comparison on a field of a node's result of task `taskId` (32 lowercase hex characters). */
export interface BoltTaskTerm {
  kind: 'BOLT_TASK';
  taskId: string;
  field: BoltTaskField;
  operator: CompareOp;
  value: string;
}

/** A leaf of an expression. */
export type FilterTerm = ClassTerm | ClassRegexTerm | IdentityTerm | IdentityRegexTerm | AgentTerm | AgentRegexTerm | FactTerm | BoltTaskTerm;

/** Conjunction of its operands; with none it holds for every node (the empty filter). */
export interface AndExpr {
  kind: 'AND';
  operands: FilterExpr[];
}

/** Disjunction of two or more operands. */
export interface OrExpr {
  kind: 'OR';
  operands: FilterExpr[];
}

/** Negation. */
export interface NotExpr {
  kind: 'NOT';
  operand: FilterExpr;
}

/** A parsed filter expression. */
export type FilterExpr = AndExpr | OrExpr | NotExpr | FilterTerm;
