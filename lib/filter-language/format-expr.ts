import type { CompareOp, FilterExpr, FilterTerm } from './filter-expr';
import { isKeyword } from './filter-parser';
import { isWordChar, slashRegex } from './filter-tokenizer';

/**
 * Prints an expression in the `-S` language so that `parseCompound(formatExpr(e))` gives back
 * `e` (checked by the property test): parentheses only where precedence needs them, words bare
 * when they read back as the same word, quotes otherwise.
 */
export function formatExpr(expr: FilterExpr): string {
  switch (expr.kind) {
    case 'OR':
      return expr.operands.map((o) => formatExpr(o)).join(' or ');
    case 'AND':
      return expr.operands.map((o) => (o.kind === 'OR' ? `(${formatExpr(o)})` : formatExpr(o))).join(' and ');
    case 'NOT':
      return expr.operand.kind === 'AND' || expr.operand.kind === 'OR' ? `not (${formatExpr(expr.operand)})` : `not ${formatExpr(expr.operand)}`;
    default:
      return formatTerm(expr);
  }
}

/** Prints one term. */
export function formatTerm(term: FilterTerm): string {
  switch (term.kind) {
    case 'CLASS':
      return isBareWord(term.name) ? term.name : `with(${quote(term.name)})`;
    case 'CLASS_REGEX':
      return slashRegex(term.pattern);
    case 'IDENTITY':
    case 'AGENT':
      return `${term.kind.toLowerCase()}(${quote(term.name)})`;
    case 'IDENTITY_REGEX':
    case 'AGENT_REGEX':
      return `${term.kind === 'IDENTITY_REGEX' ? 'identity' : 'agent'}(${quote(slashRegex(term.pattern))})`;
    case 'FACT':
      return `${isBareWord(term.path) ? term.path : `fact(${quote(term.path)})`} ${formatComparison(term.operator, term.value)}`;
    case 'BOLT_TASK':
      return `bolt_task(${quote(term.taskId)}).${term.field} ${formatComparison(term.operator, term.value)}`;
  }
}

function formatComparison(op: CompareOp, value: string): string {
  if (op === '=~') return `=~ ${slashRegex(value)}`;
  if (op === '!~') return `!= ${slashRegex(value)}`;
  return `${op} ${isBareWord(value) ? value : quote(value)}`;
}

/** True when `s` tokenizes back as one WORD that is not a keyword. */
function isBareWord(s: string): boolean {
  return s.length > 0 && !isKeyword(s) && [...s].every(isWordChar);
}

/** A single-quoted string, `\` and `'` escaped. */
export function quote(s: string): string {
  return `'${s.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}
