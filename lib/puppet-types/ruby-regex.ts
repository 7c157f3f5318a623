import { linearRegex, RegexSyntaxError, type LinearRegex } from '../linear-regex';
import { cut } from '../quote';

/**
 * Ruby (Onigmo) regular expressions translated to RE2 syntax and run in linear time
 * (lib/linear-regex.ts), for `Pattern` (docs/task-format.md §7.4): a task's metadata must not be
 * able to make the scheduler's check of an operator's input backtrack for seconds.
 *
 * Translated: `\A` `\z` `\Z` (at the end of the regex or of an alternative); `^` `$` (always line
 * anchors in Ruby, `\n` only); `.` (never matches `\n` only); `\h` `\H`; `\s` `\S` (Ruby's ASCII
 * set); `\e` `\a`; `\uHHHH`; POSIX brackets `[[:alpha:]]` and friends (ASCII); `{,n}`; a leading
 * `(?i)`, `(?m)`, `(?mi)` (Ruby `m` = dot matches newline).
 *
 * Refused with a clear message (no faithful linear-time equivalent; mis-translating would accept
 * or reject the wrong strings silently): backreferences `\1` `\k<name>`, lookahead and lookbehind,
 * atomic groups `(?>...)`, possessive quantifiers (`*+ ++ ?+ }+`), inline options other than a
 * leading one (`(?i:...)`, `(?x)`, mid-pattern `(?i)`), comments `(?#...)`, conditionals
 * `(?(1)...)`, `\G \K \R \X \g<...>`, `\p{...}`, `\u{...}`, `\x{...}`, `\Z` before more pattern,
 * nested character classes and `&&` intersections, negated POSIX brackets, repeat counts over 1000.
 */

/** A Ruby regex with its RE2 translation. */
export interface RubyRegex {
  /** The Ruby source as written between the slashes (or in the quoted string). */
  source: string;
  /** The RE2 translation; run as an unanchored search, case-insensitively when `caseInsensitive`. */
  re2: string;
  caseInsensitive: boolean;
  regex: LinearRegex;
}

/** A Ruby regex construct that cannot be translated: `message` says which and why. */
export class RubyRegexError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
    this.name = 'RubyRegexError';
  }
}

const RUBY_SPACE = ' \\t\\r\\n\\f\\v';
const HEX = '0-9a-fA-F';

const POSIX_CLASSES: Record<string, string> = {
  alpha: 'a-zA-Z',
  digit: '0-9',
  alnum: 'a-zA-Z0-9',
  upper: 'A-Z',
  lower: 'a-z',
  space: RUBY_SPACE,
  blank: ' \\t',
  xdigit: HEX,
  word: '\\w',
  punct: '!-\\/:-@\\[-`{-~',
  cntrl: '\\x00-\\x1f\\x7f',
  print: ' -~',
  graph: '!-~',
};

const REFUSED_ESCAPES: Record<string, string> = {
  G: '\\G (match start anchor)',
  K: '\\K (keep)',
  R: '\\R (linebreak)',
  X: '\\X (grapheme cluster)',
  g: '\\g<...> (subexpression call)',
  p: '\\p{...} (Unicode property)',
  P: '\\P{...} (Unicode property)',
};

/** Translates a Ruby regex source to RE2 and compiles it; throws RubyRegexError for refused constructs. */
export function translateRubyRegex(source: string): RubyRegex {
  let i = 0;
  let caseInsensitive = false;
  let dotAll = false;
  const lead = /^\(\?([mix]+)\)/.exec(source);
  if (lead) {
    if (lead[1].includes('x')) throw new RubyRegexError('the extended mode option (?x) is not supported; write the regex without it', 0);
    caseInsensitive = lead[1].includes('i');
    dotAll = lead[1].includes('m');
    i = lead[0].length;
  }
  const shown = `/${cut(source, 60)}/`;
  let out = '';
  let inClass = false;
  let classStart = 0;
  const refuse = (what: string, at: number): never => {
    throw new RubyRegexError(`${what} has no linear-time (RE2) equivalent (Ruby regex ${shown} at offset ${at})`, at);
  };
  while (i < source.length) {
    const c = source[i];
    if (c === '\\') {
      const n = source[i + 1];
      if (n === undefined) throw new RubyRegexError(`Ruby regex ${shown} ends with a lone backslash`, i);
      if (REFUSED_ESCAPES[n]) refuse(REFUSED_ESCAPES[n], i);
      if ((n === 'u' || n === 'x') && source[i + 2] === '{') refuse(`\\${n}{...}`, i);
      const unicode = n === 'u' ? /^[0-9a-fA-F]{4}/.exec(source.slice(i + 2)) : null;
      if (unicode) {
        out += `\\x{${unicode[0]}}`;
        i += 6;
        continue;
      }
      if (inClass) {
        if (n === 'h') out += HEX;
        else if (n === 's') out += RUBY_SPACE;
        else if (n === 'H' || n === 'S') refuse(`\\${n} inside a character class`, i);
        else if (n === 'e') out += '\\x1b';
        else if (n === 'a') out += '\\x07';
        else out += c + n;
      } else if (n === 'A') out += '\\A';
      else if (n === 'z') out += '\\z';
      else if (n === 'Z') {
        // End of input or before a final newline: the same as an optional newline and the end,
        // as long as nothing of the regex follows it (else the newline would be consumed).
        if (!/^\)*$/.test(source.slice(i + 2))) refuse('\\Z before more of the regex (only at its end)', i);
        out += '(?:\\n?\\z)';
      } else if (n === 'h') out += `[${HEX}]`;
      else if (n === 'H') out += `[^${HEX}]`;
      else if (n === 's') out += `[${RUBY_SPACE}]`;
      else if (n === 'S') out += `[^${RUBY_SPACE}]`;
      else if (n === 'e') out += '\\x1b';
      else if (n === 'a') out += '\\x07';
      else out += c + n;
      i += 2;
      continue;
    }
    if (inClass) {
      if (c === '[') {
        const posix = /^\[:(\^?)([a-z]+):\]/.exec(source.slice(i));
        if (posix) {
          if (posix[1]) refuse(`the negated POSIX bracket [:^${posix[2]}:]`, i);
          const cls = POSIX_CLASSES[posix[2]];
          if (cls === undefined) throw new RubyRegexError(`unknown POSIX bracket [:${posix[2]}:] in Ruby regex ${shown}`, i);
          out += cls;
          i += posix[0].length;
          continue;
        }
        refuse('a nested character class', i);
      }
      if (c === '&' && source[i + 1] === '&') refuse('character class intersection &&', i);
      if (c === ']' && i > classStart) inClass = false;
      out += c;
      i++;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      i++;
      if (source[i] === '^') {
        out += '^';
        i++;
      }
      classStart = i;
      // A `]` right after `[` or `[^` is a literal in Ruby; JS needs it escaped.
      if (source[i] === ']') {
        out += '\\]';
        i++;
      }
      continue;
    }
    if (c === '(' && source[i + 1] === '?') {
      const rest = source.slice(i + 2);
      if (rest.startsWith('>')) refuse('the atomic group (?>...)', i);
      if (rest.startsWith('#')) refuse('the comment group (?#...)', i);
      if (rest.startsWith('(')) refuse('the conditional group (?(...)...)', i);
      if (/^[imx-]+[:)]/.test(rest)) refuse('an inline option group other than a leading (?i) or (?m)', i);
      if (rest.startsWith('~')) refuse('the absence operator (?~...)', i);
      out += '(?';
      i += 2;
      continue;
    }
    if (c === '^' || c === '$') {
      out += `(?m:${c})`;
      i++;
      continue;
    }
    if (c === '.') {
      out += dotAll ? '[\\s\\S]' : '[^\\n]';
      i++;
      continue;
    }
    if (c === '{') {
      const q = /^\{(\d*)(,?)(\d*)\}/.exec(source.slice(i));
      if (q && (q[1] || q[3])) {
        out += q[1] === '' ? `{0,${q[3]}}` : q[0];
        i += q[0].length;
        if (source[i] === '+') refuse('a possessive quantifier', i);
        continue;
      }
      out += '\\{';
      i++;
      continue;
    }
    if ((c === '*' || c === '+' || c === '?') && source[i + 1] === '+') refuse('a possessive quantifier', i);
    if (c === '}') {
      out += '\\}';
      i++;
      continue;
    }
    out += c;
    i++;
  }
  if (inClass) throw new RubyRegexError(`Ruby regex ${shown} has an unterminated character class`, classStart);
  let regex: LinearRegex;
  try {
    regex = linearRegex(out, { caseInsensitive });
  } catch (err) {
    if (!(err instanceof RegexSyntaxError)) throw err;
    throw new RubyRegexError(
      err.unsupported ? `Ruby regex ${shown} cannot run: ${err.message}` : `Ruby regex ${shown} is not a valid regular expression: ${err.message}`,
      0,
    );
  }
  return { source, re2: out, caseInsensitive, regex };
}
