import { FilterSyntaxError } from './filter-syntax-error';

/**
 * The tokens of the filter language (docs/choria-compat.md §6.3). Words are runs of characters other
 * than blanks and the punctuation below, so fact names (`os.family`), class names
 * (`apache::mod`), numbers (`-1.5`) and task ids are single words.
 */

/** Token kinds: WORD (bare word, incl. keywords), STRING (quoted), REGEX (`/…/`), OP, punctuation, END. */
export type TokenKind = 'WORD' | 'STRING' | 'REGEX' | 'OP' | 'LPAREN' | 'RPAREN' | 'BANG' | 'DOT' | 'END';

/** One token; `pos` is the 0-based offset of its first character, `text` its value. */
export interface Token {
  kind: TokenKind;
  text: string;
  pos: number;
}

/** Characters that end a word (besides blanks). */
const NON_WORD = new Set(['(', ')', '!', '=', '<', '>', '~', "'", '"', '/']);

/** Operators, longest first so `<=` wins over `<`. `=<`/`=>` are Choria's aliases (docs/choria-compat.md §6.4). */
const OPERATORS = ['==', '=~', '!=', '<=', '>=', '=<', '=>', '=', '<', '>'];

/** True for a character that may be part of a bare word. */
export function isWordChar(c: string): boolean {
  return !NON_WORD.has(c) && !/\s/.test(c);
}

/**
 * The tokens of `text` one at a time, ending with one END token; throws FilterSyntaxError when
 * it reaches a token that cannot be read. The parser takes them as it goes, so an expression it
 * refuses early (nested past its depth limit at column 65 of 40,000 parentheses) costs the
 * tokens read up to there, not the whole text.
 */
export function* tokens(text: string): Generator<Token, void, undefined> {
  let previous: TokenKind | undefined;
  let i = 0;
  const token = (kind: TokenKind, value: string, pos: number): Token => {
    previous = kind;
    return { kind, text: value, pos };
  };
  while (i < text.length) {
    const c = text[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const start = i;
    if (c === '(' || c === ')') {
      yield token(c === '(' ? 'LPAREN' : 'RPAREN', c, i++);
      continue;
    }
    // `.` is a DOT only right after `)`, as in `bolt_task('…').exitcode`; elsewhere it is part of a word (`.5`).
    if (c === '.' && previous === 'RPAREN') {
      yield token('DOT', c, i++);
      continue;
    }
    const op = OPERATORS.find((o) => text.startsWith(o, i));
    if (op) {
      yield token('OP', op, i);
      i += op.length;
      continue;
    }
    if (c === '!') {
      yield token('BANG', c, i++);
      continue;
    }
    if (c === "'" || c === '"') {
      let value = '';
      i++;
      for (;;) {
        if (i >= text.length) throw new FilterSyntaxError(text, i + 1, `a closing ${c} for the string at column ${start + 1}`);
        const d = text[i];
        if (d === c) break;
        // A backslash escapes the quote and itself; before anything else it is kept literally.
        if (d === '\\' && (text[i + 1] === c || text[i + 1] === '\\')) {
          value += text[i + 1];
          i += 2;
          continue;
        }
        value += d;
        i++;
      }
      i++;
      yield token('STRING', value, start);
      continue;
    }
    if (c === '/') {
      i++;
      let raw = '';
      for (;;) {
        if (i >= text.length) throw new FilterSyntaxError(text, i + 1, `a closing / for the regular expression at column ${start + 1}`);
        const d = text[i];
        if (d === '/') break;
        if (d === '\\' && i + 1 < text.length) {
          raw += d + text[i + 1];
          i += 2;
          continue;
        }
        raw += d;
        i++;
      }
      i++;
      yield token('REGEX', normalizeRegexSource(raw), start);
      continue;
    }
    if (c === '~') throw new FilterSyntaxError(text, i + 1, "a term or operator (a lone '~' is neither; did you mean '=~'?)");
    while (i < text.length && isWordChar(text[i])) i++;
    yield token('WORD', text.slice(start, i), start);
  }
  yield token('END', '', text.length);
}

/** Every token of `text`, ending with one END token. Throws FilterSyntaxError. */
export function tokenize(text: string): Token[] {
  return [...tokens(text)];
}

/**
 * A regex source in canonical form: `\/` written to keep a slash inside `/…/` becomes `/`
 * (the same pattern to RegExp), so a printed and re-parsed filter has the same AST.
 */
export function normalizeRegexSource(raw: string): string {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === '\\' && i + 1 < raw.length) {
      out += raw[i + 1] === '/' ? '/' : raw[i] + raw[i + 1];
      i++;
    } else {
      out += raw[i];
    }
  }
  return out;
}

/** A regex source written between slashes: each unescaped `/` escaped. */
export function slashRegex(source: string): string {
  let out = '/';
  for (let i = 0; i < source.length; i++) {
    if (source[i] === '\\' && i + 1 < source.length) {
      out += source[i] + source[i + 1];
      i++;
    } else {
      out += source[i] === '/' ? '\\/' : source[i];
    }
  }
  return out + '/';
}
