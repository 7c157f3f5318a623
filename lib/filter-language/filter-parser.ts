import { BOLT_TASK_FIELDS, type BoltTaskField, type CompareOp, type FilterExpr, type FilterTerm } from './filter-expr';
import { FilterSyntaxError } from './filter-syntax-error';
import { tokens, type Token } from './filter-tokenizer';
import { checkRegex, matchEntryTerm, parseWithItem } from './single-filters';
import { TASK_ID_EXPECTED, TASK_ID_PATTERN } from '../task-id';

/**
 * A recursive-descent parser for `-S` compound filters (the legacy grammar of
 * docs/choria-compat.md §6.3 with the functions of §6.4):
 *
 *   expr     := or END
 *   or       := and { 'or' and }
 *   and      := unary { 'and' unary }
 *   unary    := ( 'not' | '!' ) unary | '(' or ')' | term
 *   term     := REGEX                                        class regex
 *             | 'fact' '(' STRING ')' op value
 *             | 'with' '(' STRING ')'                          -W rule: fact filter, else class
 *             | ( 'identity' | 'agent' ) '(' STRING ')'        -I / -A entry: exact or /regex/
 *             | 'bolt_task' '(' STRING ')' '.' FIELD op value
 *             | WORD [ op value ]                              fact comparison, else class
 *   op       := '==' | '=' | '!=' | '<' | '>' | '<=' | '>=' | '=<' | '=>' | '=~'
 *   value    := WORD | STRING | REGEX
 *
 * Precedence not > and > or. Keywords are case-insensitive. `=` means `==`; a `/re/` value with
 * `=`/`==` means `=~` and with `!=` means `!~`; ordering operators take no regex.
 */

/** Deepest nesting of parentheses and negations accepted, so input cannot exhaust the stack. */
export const MAX_FILTER_DEPTH = 64;

/** Longest expression accepted, in characters. */
export const MAX_FILTER_LENGTH_CHARS = 65_536;

const KEYWORDS = new Set(['and', 'or', 'not']);

/** True for a word the grammar reserves (`and`, `or`, `not`, any case). */
export function isKeyword(word: string): boolean {
  return KEYWORDS.has(word.toLowerCase());
}

/** The functions of the grammar, each with what its quoted argument is. */
const FUNCTIONS = new Map([
  ['fact', 'fact path'],
  ['with', 'class or fact filter'],
  ['identity', 'identity or /regex/'],
  ['agent', 'agent or /regex/'],
  ['bolt_task', 'task id'],
]);

const OPS: Record<string, CompareOp> = { '==': '==', '=': '==', '!=': '!=', '<': '<', '>': '>', '<=': '<=', '>=': '>=', '=<': '<=', '=>': '>=', '=~': '=~' };

/** Parses a compound filter (`-S`); throws FilterSyntaxError naming the column and what was expected. */
export function parseCompound(text: string): FilterExpr {
  if (text.length > MAX_FILTER_LENGTH_CHARS)
    throw new FilterSyntaxError(text.slice(0, 40) + '…', MAX_FILTER_LENGTH_CHARS + 1, `at most ${MAX_FILTER_LENGTH_CHARS} characters`);
  return new Parser(text).parse();
}

class Parser {
  /** Tokens are read as the parser needs them: one of lookahead, `current`. */
  private readonly source: Generator<Token, void, undefined>;
  private current: Token;
  private depth = 0;

  constructor(private readonly text: string) {
    this.source = tokens(text);
    this.current = this.read();
  }

  private read(): Token {
    const r = this.source.next();
    // advance() stops at the END token, so the generator is never read past its end; END again if it were.
    return r.done ? { kind: 'END', text: '', pos: this.text.length } : r.value;
  }

  /** Moves past the current token (never past END). */
  private advance(): void {
    if (this.current.kind !== 'END') this.current = this.read();
  }

  parse(): FilterExpr {
    if (this.peek().kind === 'END') this.fail(this.peek(), 'a filter expression');
    const expr = this.or();
    const end = this.peek();
    if (end.kind !== 'END')
      this.fail(end, end.kind === 'RPAREN' ? "'and', 'or' or the end (this ')' closes nothing)" : "'and', 'or' or the end of the expression");
    return expr;
  }

  private or(): FilterExpr {
    const operands = [this.and()];
    while (this.isWord('or')) {
      this.advance();
      operands.push(this.and());
    }
    return group('OR', operands);
  }

  private and(): FilterExpr {
    const operands = [this.unary()];
    while (this.isWord('and')) {
      this.advance();
      operands.push(this.unary());
    }
    return group('AND', operands);
  }

  private unary(): FilterExpr {
    const t = this.peek();
    if (t.kind === 'BANG' || this.isWord('not') || t.kind === 'LPAREN') {
      if (++this.depth > MAX_FILTER_DEPTH) this.fail(t, `at most ${MAX_FILTER_DEPTH} nested parentheses and negations`);
      this.advance();
      let expr: FilterExpr;
      if (t.kind === 'LPAREN') {
        expr = this.or();
        this.expect('RPAREN', "')'");
      } else {
        expr = { kind: 'NOT', operand: this.unary() };
      }
      this.depth--;
      return expr;
    }
    return this.term();
  }

  private term(): FilterTerm {
    const t = this.next();
    if (t.kind === 'REGEX') {
      checkRegex(this.text, t.pos + 2, t.text);
      return { kind: 'CLASS_REGEX', pattern: t.text };
    }
    if (t.kind !== 'WORD' || isKeyword(t.text)) this.fail(t, 'a class, a fact comparison, (, not, fact(), with(), identity(), agent() or bolt_task()');
    if (this.peek().kind === 'LPAREN') return this.call(t);
    if (this.peek().kind !== 'OP') return { kind: 'CLASS', name: t.text };
    const [operator, value] = this.comparison();
    return { kind: 'FACT', path: t.text, operator, value };
  }

  private call(name: Token): FilterTerm {
    const fn = name.text.toLowerCase();
    if (!FUNCTIONS.has(fn)) this.fail(name, `a known function (fact, with, identity, agent or bolt_task), not '${name.text}'`);
    this.advance(); // (
    const arg = this.expect('STRING', `a quoted ${FUNCTIONS.get(fn)}`);
    this.expect('RPAREN', "')'");
    if (fn === 'identity' || fn === 'agent') {
      try {
        return matchEntryTerm(arg.text, fn === 'identity' ? 'IDENTITY' : 'AGENT');
      } catch (err) {
        if (err instanceof FilterSyntaxError) this.fail(arg, `${FUNCTIONS.get(fn)} in ${fn}() (${err.expected})`);
        throw err;
      }
    }
    if (fn === 'with') {
      try {
        return parseWithItem(arg.text.trim());
      } catch (err) {
        if (err instanceof FilterSyntaxError) this.fail(arg, `a class or fact filter in with() (${err.expected})`);
        throw err;
      }
    }
    if (fn === 'fact') {
      if (arg.text === '') this.fail(arg, 'a fact path');
      const [operator, value] = this.comparison();
      return { kind: 'FACT', path: arg.text, operator, value };
    }
    if (!TASK_ID_PATTERN.test(arg.text)) this.fail(arg, `a task id of ${TASK_ID_EXPECTED}`);
    this.expect('DOT', `'.' and a field (${BOLT_TASK_FIELDS.join(', ')})`);
    const field = this.next();
    if (field.kind !== 'WORD' || !BOLT_TASK_FIELDS.includes(field.text as BoltTaskField))
      this.fail(field, `a bolt_task field (${BOLT_TASK_FIELDS.join(', ')})`);
    const [operator, value] = this.comparison();
    return { kind: 'BOLT_TASK', taskId: arg.text, field: field.text as BoltTaskField, operator, value };
  }

  private comparison(): [CompareOp, string] {
    const opToken = this.expect('OP', 'a comparison operator (== = != < > <= >= =< => =~)');
    const op = OPS[opToken.text];
    const v = this.next();
    if (v.kind === 'REGEX') {
      if (op !== '==' && op !== '!=' && op !== '=~') this.fail(v, `a number or text after '${opToken.text}' (a /regex/ goes with ==, =, != or =~)`);
      checkRegex(this.text, v.pos + 2, v.text);
      return [op === '!=' ? '!~' : '=~', v.text];
    }
    if (v.kind !== 'WORD' && v.kind !== 'STRING') this.fail(v, `a value after '${opToken.text}' (a word, number, quoted string or /regex/)`);
    if (op === '=~') checkRegex(this.text, v.pos + 1, v.text);
    return [op, v.text];
  }

  private peek(): Token {
    return this.current;
  }

  private next(): Token {
    const t = this.current;
    this.advance();
    return t;
  }

  private isWord(word: string): boolean {
    const t = this.peek();
    return t.kind === 'WORD' && t.text.toLowerCase() === word;
  }

  private expect(kind: Token['kind'], expected: string): Token {
    const t = this.peek();
    if (t.kind !== kind) this.fail(t, expected);
    this.advance();
    return t;
  }

  private fail(t: Token, expected: string): never {
    throw new FilterSyntaxError(this.text, t.pos + 1, expected);
  }
}

/** One operand as is; several flattened into one AND/OR (nested same-kind groups merged). */
function group(kind: 'AND' | 'OR', operands: FilterExpr[]): FilterExpr {
  if (operands.length === 1) return operands[0];
  return { kind, operands: operands.flatMap((o) => (o.kind === kind ? o.operands : [o])) };
}
