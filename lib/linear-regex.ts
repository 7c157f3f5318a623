import type { RE2JS as RE2JSClass } from 're2js';
import { asciiDfa, type PackedTexts } from './ascii-dfa';
import { cut } from './quote';

export { PackedTexts } from './ascii-dfa';

/**
 * Regular expressions that run in time linear in their input, for every regex that arrives from
 * outside the process: discovery filters (`-I /re/`, `-F fact=~/re/`, `-S` regexes) and Puppet
 * `Pattern` types in task metadata, matched against operator input. JavaScript's RegExp
 * backtracks: `/^(a|a)*$/` against 30 characters holds the event loop for seconds, and every
 * other call on that process waits. RE2 (here its pure JavaScript port, re2js) answers the same
 * in microseconds, and is also the syntax Choria's Go discovery already uses for filters.
 *
 * The price is RE2's syntax: no backreferences, no lookaround, no atomic groups or possessive
 * quantifiers, repeat counts up to 1000. Such a regex is refused with a message naming the
 * construct (docs/filters.md).
 */

/**
 * re2js, loaded on the first regex: building its tables is a noticeable part of the `baton`
 * CLI's start-up, and most commands never compile a regex.
 */
let loaded: typeof RE2JSClass | undefined;
function re2js(): typeof RE2JSClass {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (loaded ??= (require('re2js') as typeof import('re2js')).RE2JS);
}

/** Options of `linearRegex`. */
export interface LinearRegexOptions {
  /** Match letters case-insensitively. Default false. */
  caseInsensitive?: boolean;
  /** `^` and `$` also match at line starts and ends (`\n`). Default false. */
  multiline?: boolean;
  /**
   * Also build the automaton of lib/ascii-dfa.ts, which answers the common regexes on ASCII text
   * several times faster than re2js, with the same answers. For a regex tested against many
   * strings (a discovery filter over a fleet's identities and facts), where that speed shows.
   * Default false: access policies and task input types, whose answers decide what may run, stay
   * on re2js alone, the engine RE2's own authors maintain.
   */
  automaton?: boolean;
}

/** A compiled linear-time regex: an unanchored search, as RegExp.prototype.test. */
export interface LinearRegex {
  /** True when the regex matches somewhere in `s`. */
  test(s: string): boolean;
  /**
   * Tests texts `from` .. `to - 1` of `texts` at once, calling `matched(k)` for each text `test`
   * would accept, in order; several times faster than `test` on each. Present when the regex
   * has an automaton (the `automaton` option, a regex in its grammar).
   */
  testPacked?(texts: PackedTexts, from: number, to: number, matched: (k: number) => void): void;
}

/** A regex the linear-time engine cannot run or parse; the message is one line saying why. */
export class RegexSyntaxError extends Error {
  constructor(
    message: string,
    /** The construct RE2 has no linear-time way to run, when that is the problem (not a typo). */
    readonly unsupported?: string,
  ) {
    super(message);
    this.name = 'RegexSyntaxError';
  }
}

/**
 * Constructs of backtracking engines that RE2 has no way to run in linear time, each with the
 * name an operator recognises (RE2's own message for them is "invalid escape" or "invalid Perl
 * syntax", which does not say what to change).
 */
const UNSUPPORTED: Array<[RegExp, string]> = [
  [/\\[1-9]/, 'a backreference (\\1 ... \\9)'],
  [/\\k</, 'a named backreference (\\k<name>)'],
  [/\(\?<[=!]/, 'a lookbehind ((?<= or (?<!)'],
  [/\(\?[=!]/, 'a lookahead ((?= or (?!)'],
  [/\(\?>/, 'an atomic group ((?>...))'],
  [/[*+?}]\+/, 'a possessive quantifier (*+ ++ ?+ }+)'],
];

/** The first unsupported construct of `source`, ignoring escaped backslashes; undefined if none. */
function unsupportedConstruct(source: string): string | undefined {
  // `\\1` is a backslash and a 1, not a backreference: drop escaped backslashes first.
  const plain = source.replace(/\\\\/g, '');
  return UNSUPPORTED.find(([re]) => re.test(plain))?.[1];
}

/**
 * Compiles `source` (RE2 syntax) for linear-time matching. Throws RegexSyntaxError with a one-line
 * reason: the unsupported construct, or RE2's description of the syntax error.
 */
export function linearRegex(source: string, options: LinearRegexOptions = {}): LinearRegex {
  const RE2JS = re2js();
  const flags = (options.caseInsensitive ? RE2JS.CASE_INSENSITIVE : 0) | (options.multiline ? RE2JS.MULTILINE : 0);
  let re2: LinearRegex;
  try {
    re2 = RE2JS.compile(source, flags);
  } catch (err) {
    const construct = unsupportedConstruct(source);
    if (construct) throw new RegexSyntaxError(`${construct} is not supported: regular expressions are RE2 syntax, matched in linear time`, construct);
    const reason = err instanceof Error ? err.message.replace(/^error parsing regexp: /, '') : String(err);
    // RE2 quotes the offending part of the regex: kept short and on one line.
    throw new RegexSyntaxError(`${cut(reason.replace(/[\r\n]+/g, ' '), 120)} (regular expressions are RE2 syntax)`);
  }
  // The same answers, several times faster, for the common regexes on ASCII text
  // (lib/ascii-dfa.ts); re2js decides the rest.
  const dfa = !options.automaton || options.multiline ? undefined : asciiDfa(source, options.caseInsensitive);
  if (!dfa) return re2;
  return {
    test(s) {
      const decided = dfa.test(s);
      return decided === undefined ? re2.test(s) : decided;
    },
    testPacked(texts, from, to, matched) {
      const { bytes, starts } = texts;
      dfa.testPacked(texts, from, to, matched, (k) => {
        if (re2.test(bytes.toString('utf8', starts[k], starts[k + 1] - 1))) matched(k);
      });
    },
  };
}

/** Characters that stand for themselves in RE2 syntax outside a class (ASCII only, so no code point is split). */
const PLAIN_LITERAL = /^[ !"#%&',\-/0-9:;<=>@A-Z_`a-z~]$/;

/** Characters that repeat the literal before them (`a*`, `a+`, `a?`, `a{2}`): it may be absent or repeated. */
const REPEAT = /^[*+?{]$/;

/**
 * Text every string a case-sensitive `source` matches starts with: the literal characters
 * right after a leading `^` (which, without the multiline option, is the start of the text), up
 * to the first character that is not one. '' when there is none or it cannot be told from the
 * source alone: no leading `^`, a `|` anywhere (an alternative need not start with the same
 * text), `\Q` quoting. Lets a caller holding sorted names run the regex only on those with the
 * prefix. Conservative: whatever this returns, the regex matches no string without it.
 */
export function anchoredLiteralPrefix(source: string, options: LinearRegexOptions = {}): string {
  if (options.caseInsensitive || options.multiline || !source.startsWith('^')) return '';
  // An escaped backslash is a literal, never the start of another escape: dropped before
  // looking for alternation and quoting.
  const unescaped = source.replace(/\\./gs, '');
  if (unescaped.includes('|') || source.includes('\\Q')) return '';
  let prefix = '';
  let i = 1;
  while (i < source.length) {
    const c = source[i];
    let literal: string;
    let width: number;
    if (c === '\\' && i + 1 < source.length && /^[!-/:-@[-`{-~]$/.test(source[i + 1])) {
      // An escaped ASCII punctuation character is always itself.
      literal = source[i + 1];
      width = 2;
    } else if (PLAIN_LITERAL.test(c)) {
      literal = c;
      width = 1;
    } else {
      break;
    }
    if (i + width < source.length && REPEAT.test(source[i + width])) break;
    prefix += literal;
    i += width;
  }
  return prefix;
}
