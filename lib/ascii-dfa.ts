/**
 * A deterministic automaton for a restricted RE2 grammar over ASCII text, built lazily while it
 * matches: one table lookup per character, whatever the regex, so no regex can make it
 * backtrack. It exists for speed: RE2's pure-JavaScript port (re2js) has a lazy DFA of its own,
 * but measured several times dearer per short string (each call wraps its input and chooses an
 * engine), which adds up when one regex is tested against every identity of a large fleet.
 *
 * The grammar is what filters use in practice, where RE2's meaning on ASCII text is simple
 * enough to restate here: literals, escaped punctuation, `\n \t \r \f \v`, `.`, classes of
 * literals, ranges and `\d \w \s` (negated too), `\D \W \S`, `^` and `$` (the text's start and
 * end: no multiline), `* + ? {n} {n,} {n,m}` and their lazy forms, groups `(...)` and `(?:...)`,
 * `|`. Anything else (flags, named groups, `\b`, `\p`, `\x`, POSIX classes, a `{` or `]` RE2 reads
 * as a literal, non-ASCII characters) gets no automaton and is left to re2js. A caller compiles
 * the regex with re2js first, so only regexes RE2 accepts arrive here.
 *
 * A string with a character outside ASCII is not decided (`test` answers undefined): RE2's case
 * folding and classes reach beyond ASCII there (the Kelvin sign is a `k` case-insensitively).
 * The caller then matches with re2js. A regex whose automaton has more states than the table holds
 * (`(a|b)*a(a|b){20}` has millions) empties its table when it is full and goes on, as RE2's own
 * DFA does: a character then costs at most one closure over the NFA, as a step of an NFA
 * simulation would, so matching stays linear in the text.
 */

/**
 * Entries of an automaton's table (states × byte classes, 4 bytes each), beyond which it is
 * emptied: 128 kB at most per regex, a few thousand states for the few byte classes of a common
 * regex. Compiled regexes are kept (filter-language's cache), so each one's size is bounded.
 */
const MAX_TABLE_ENTRIES = 32_768;
/** NFA nodes of a regex (repeats written out), beyond which it gets no automaton. */
const MAX_NFA_NODES = 5000;

/** A compiled automaton; `test` answers undefined for a string it does not decide. */
export interface AsciiDfa {
  /** Whether the regex matches somewhere in `s` (an unanchored search); undefined when not decided here. */
  test(s: string): boolean | undefined;
  /**
   * Tests texts `from` .. `to - 1` of `texts` in one pass over their bytes, as `test` tests each:
   * `matched(k)` for each text matched, `undecided(k)` for each it does not decide (a byte
   * outside ASCII), in order.
   */
  testPacked(texts: PackedTexts, from: number, to: number, matched: (k: number) => void, undecided: (k: number) => void): void;
}

/**
 * Many texts in one buffer, each followed by a 0 byte: text k is `bytes` from `starts[k]` up to
 * `starts[k + 1] - 1` (its 0), UTF-8 encoded. Walking one buffer in one loop spares a call and a
 * string's own checks per text, most of the cost of testing a short text; the 0 keeps a literal
 * looked for over the whole buffer from matching across two texts (no literal of the grammar
 * has it). Texts are only appended (`append`), so a copy of the first N stays valid.
 */
export class PackedTexts {
  private latin1Text: string | undefined;

  private constructor(
    readonly bytes: Buffer,
    /** At least `count + 1` entries. */
    readonly starts: Uint32Array,
    /** How many texts there are. */
    readonly count: number,
  ) {}

  /** No texts. */
  static empty(): PackedTexts {
    return new PackedTexts(Buffer.alloc(0), new Uint32Array(1), 0);
  }

  /**
   * These texts and `texts` after them. The buffers are reused while they have room and grown to
   * twice their size when not, so appending text by text costs linear time in all; this object
   * must not be appended to again (its spare room is the new one's).
   */
  append(texts: string[]): PackedTexts {
    const from = this.count;
    let { bytes, starts } = this;
    let used = starts[from];
    const needed = used + texts.reduce((n, text) => n + Buffer.byteLength(text) + 1, 0);
    if (needed > bytes.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, 2 * bytes.length));
      bytes.copy(grown, 0, 0, used);
      bytes = grown;
    }
    if (from + texts.length + 1 > starts.length) {
      const grown = new Uint32Array(Math.max(from + texts.length + 1, 2 * starts.length));
      grown.set(starts.subarray(0, from + 1));
      starts = grown;
    }
    for (let k = 0; k < texts.length; k++) {
      used += bytes.write(texts[k], used);
      bytes[used++] = 0;
      starts[from + k + 1] = used;
    }
    return new PackedTexts(bytes, starts, from + texts.length);
  }

  /**
   * The same bytes as a string of one character per byte (made on first use), for the engine's
   * substring search: String.prototype.indexOf costs a fraction of Buffer.prototype.indexOf's
   * call for a needle of several bytes.
   */
  latin1(): string {
    return (this.latin1Text ??= this.bytes.toString('latin1', 0, this.starts[this.count]));
  }
}

/** A set of ASCII characters, one byte per code. */
type CharSet = Uint8Array;

type Ast =
  | { t: 'set'; set: CharSet }
  | { t: 'cat'; parts: Ast[] }
  | { t: 'alt'; parts: Ast[] }
  | { t: 'rep'; sub: Ast; min: number; max: number } // max -1: unbounded
  | { t: 'bol' }
  | { t: 'eol' };

/** Thrown inside the parser when the regex is outside the grammar; never escapes this module. */
class OutsideGrammar extends Error {}

const NL = 10;
const PUNCTUATION = /^[!-/:-@[-`{-~]$/;
const SIMPLE_ESCAPES: Record<string, number> = { n: 10, t: 9, r: 13, f: 12, v: 11 };

function charSet(test: (c: number) => boolean): CharSet {
  const set = new Uint8Array(128);
  for (let c = 0; c < 128; c++) set[c] = test(c) ? 1 : 0;
  return set;
}

const isDigit = (c: number) => c >= 48 && c <= 57;
const isWord = (c: number) => isDigit(c) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
// RE2's \s: [\t\n\f\r ], without \v.
const isSpace = (c: number) => c === 9 || c === 10 || c === 12 || c === 13 || c === 32;
const PERL_CLASSES: Record<string, (c: number) => boolean> = {
  d: isDigit,
  D: (c) => !isDigit(c),
  w: isWord,
  W: (c) => !isWord(c),
  s: isSpace,
  S: (c) => !isSpace(c),
};

/** Adds the other case of every ASCII letter of `set`. */
function foldCase(set: CharSet): CharSet {
  const out = set.slice();
  for (let c = 65; c <= 90; c++) if (set[c] || set[c + 32]) out[c] = out[c + 32] = 1;
  return out;
}

/** A recursive-descent parser of the grammar above; throws OutsideGrammar for anything else. */
class Parser {
  private i = 0;

  constructor(
    private readonly src: string,
    private readonly caseInsensitive: boolean,
  ) {}

  parse(): Ast {
    const ast = this.alternation();
    if (this.i < this.src.length) throw new OutsideGrammar(); // an unmatched `)`
    return ast;
  }

  private alternation(): Ast {
    const parts = [this.concatenation()];
    while (this.src[this.i] === '|') {
      this.i++;
      parts.push(this.concatenation());
    }
    return parts.length === 1 ? parts[0] : { t: 'alt', parts };
  }

  private concatenation(): Ast {
    const parts: Ast[] = [];
    while (this.i < this.src.length && this.src[this.i] !== '|' && this.src[this.i] !== ')') {
      const atom = this.atom();
      const repeat = this.repeat();
      if (!repeat) parts.push(atom);
      else if (atom.t === 'bol' || atom.t === 'eol') throw new OutsideGrammar();
      else parts.push({ t: 'rep', sub: atom, ...repeat });
    }
    return { t: 'cat', parts };
  }

  /** The repeat after an atom, its lazy `?` consumed (a lazy repeat matches the same strings). */
  private repeat(): { min: number; max: number } | undefined {
    const c = this.src[this.i];
    let bounds: { min: number; max: number };
    if (c === '*') bounds = { min: 0, max: -1 };
    else if (c === '+') bounds = { min: 1, max: -1 };
    else if (c === '?') bounds = { min: 0, max: 1 };
    else if (c === '{') {
      const m = /^\{(\d{1,4})(,(\d{0,4}))?\}/.exec(this.src.slice(this.i));
      if (!m) throw new OutsideGrammar(); // RE2 reads it as a literal `{`
      const min = Number(m[1]);
      const max = m[2] === undefined ? min : m[3] === '' ? -1 : Number(m[3]);
      if (max !== -1 && max < min) throw new OutsideGrammar();
      bounds = { min, max };
      this.i += m[0].length - 1;
    } else return undefined;
    this.i++;
    if (this.src[this.i] === '?') this.i++;
    if (/^[*+?{]$/.test(this.src[this.i] ?? '')) throw new OutsideGrammar(); // a repeat of a repeat
    return bounds;
  }

  private atom(): Ast {
    const c = this.src[this.i++];
    switch (c) {
      case '(': {
        if (this.src[this.i] === '?') {
          if (this.src[this.i + 1] !== ':') throw new OutsideGrammar(); // flags, named groups
          this.i += 2;
        }
        const inner = this.alternation();
        if (this.src[this.i++] !== ')') throw new OutsideGrammar();
        return inner;
      }
      case '[':
        return this.set(this.charClass());
      case '.':
        return { t: 'set', set: charSet((ch) => ch !== NL) };
      case '^':
        return { t: 'bol' };
      case '$':
        return { t: 'eol' };
      case '\\': {
        const e = this.src[this.i++] ?? '';
        if (PERL_CLASSES[e]) return this.set(this.perlClass(e));
        return this.set(this.single(this.escapedChar(e)));
      }
      default:
        if (!/^[ -~]$/.test(c) || '*+?{}])'.includes(c)) throw new OutsideGrammar();
        return this.set(this.single(c.charCodeAt(0)));
    }
  }

  private set(set: CharSet): Ast {
    return { t: 'set', set: this.caseInsensitive ? foldCase(set) : set };
  }

  /** `\d \D \w \W \s \S`; a negated one in a case-insensitive regex is left to re2js, as a negated class. */
  private perlClass(e: string): CharSet {
    if (this.caseInsensitive && e === e.toUpperCase()) throw new OutsideGrammar();
    return charSet(PERL_CLASSES[e]);
  }

  private single(code: number): CharSet {
    const set = new Uint8Array(128);
    set[code] = 1;
    return set;
  }

  /** The character an escape `\e` stands for, `e` being what follows the backslash. */
  private escapedChar(e: string): number {
    if (PUNCTUATION.test(e)) return e.charCodeAt(0);
    const code = SIMPLE_ESCAPES[e];
    if (code === undefined) throw new OutsideGrammar();
    return code;
  }

  /** A class after its `[`, up to and with its `]`. */
  private charClass(): CharSet {
    const set = new Uint8Array(128);
    const negated = this.src[this.i] === '^';
    if (negated) this.i++;
    // A `]` first is a literal in RE2, a `-` inside neither first nor last nor a range is not
    // plain either: left to re2js, as are a nested `[` (POSIX classes) and an empty class.
    if (this.src[this.i] === ']') throw new OutsideGrammar();
    const start = this.i;
    for (;;) {
      const c = this.src[this.i];
      if (c === undefined || c === '[') throw new OutsideGrammar();
      if (c === ']') break;
      if (c === '\\' && PERL_CLASSES[this.src[this.i + 1]]) {
        const inClass = this.perlClass(this.src[this.i + 1]);
        for (let ch = 0; ch < 128; ch++) set[ch] |= inClass[ch];
        this.i += 2;
        continue;
      }
      if (c === '-' && this.i !== start && this.src[this.i + 1] !== ']') throw new OutsideGrammar();
      const lo = this.classChar();
      let hi = lo;
      if (this.src[this.i] === '-' && this.src[this.i + 1] !== ']' && this.src[this.i + 1] !== undefined) {
        this.i++;
        if (this.src[this.i] === '\\' && PERL_CLASSES[this.src[this.i + 1]]) throw new OutsideGrammar();
        hi = this.classChar();
        if (hi < lo) throw new OutsideGrammar();
      }
      for (let ch = lo; ch <= hi; ch++) set[ch] = 1;
    }
    this.i++; // the `]`
    // Negation after folding, as RE2: `(?i)[^a]` matches neither `a` nor `A`.
    const folded = this.caseInsensitive ? foldCase(set) : set;
    if (!negated) return folded;
    // A negated class in a case-insensitive regex is left to re2js: whether RE2 folds the
    // complement again (and so lets `k` into `(?i)[^k]` through the Kelvin sign) is not worth
    // restating here.
    if (this.caseInsensitive) throw new OutsideGrammar();
    return charSet((ch) => !folded[ch]);
  }

  /** One character of a class: plain or escaped. */
  private classChar(): number {
    const c = this.src[this.i++];
    if (c === '\\') return this.escapedChar(this.src[this.i++] ?? '');
    if (!/^[ -~]$/.test(c) || c === '[') throw new OutsideGrammar();
    return c.charCodeAt(0);
  }
}

// NFA node kinds.
const CHAR = 0;
const SPLIT = 1;
const BOL = 2;
const EOL = 3;
const MATCH = 4;

/** A Thompson NFA: node i has a kind, one or two successors, and for CHAR a byte class mask. */
class Nfa {
  readonly kind: number[] = [];
  readonly out1: number[] = [];
  readonly out2: number[] = [];
  readonly set: Array<CharSet | undefined> = [];

  add(kind: number, set?: CharSet): number {
    if (this.kind.length >= MAX_NFA_NODES) throw new OutsideGrammar();
    this.kind.push(kind);
    this.out1.push(-1);
    this.out2.push(-1);
    this.set.push(set);
    return this.kind.length - 1;
  }

  /** Builds `ast` so that it continues to node `next`; answers its entry node. */
  build(ast: Ast, next: number): number {
    switch (ast.t) {
      case 'set': {
        const n = this.add(CHAR, ast.set);
        this.out1[n] = next;
        return n;
      }
      case 'bol':
      case 'eol': {
        const n = this.add(ast.t === 'bol' ? BOL : EOL);
        this.out1[n] = next;
        return n;
      }
      case 'cat': {
        let entry = next;
        for (let k = ast.parts.length - 1; k >= 0; k--) entry = this.build(ast.parts[k], entry);
        return entry;
      }
      case 'alt': {
        let entry = this.build(ast.parts[ast.parts.length - 1], next);
        for (let k = ast.parts.length - 2; k >= 0; k--) {
          const split = this.add(SPLIT);
          this.out1[split] = this.build(ast.parts[k], next);
          this.out2[split] = entry;
          entry = split;
        }
        return entry;
      }
      case 'rep': {
        let entry = next;
        if (ast.max === -1) {
          // A loop: split into the body (which returns to the split) or on.
          const loop = this.add(SPLIT);
          this.out1[loop] = this.build(ast.sub, loop);
          this.out2[loop] = next;
          entry = loop;
        } else {
          // Optional copies, nested: x{0,2} is (x(x)?)?.
          for (let k = ast.min; k < ast.max; k++) {
            const split = this.add(SPLIT);
            this.out1[split] = this.build(ast.sub, entry);
            this.out2[split] = next;
            entry = split;
          }
        }
        for (let k = 0; k < ast.min; k++) entry = this.build(ast.sub, entry);
        return entry;
      }
    }
  }
}

// States of every automaton with a fixed meaning: no match is possible any more / a match was found.
const DEAD = 0;
const MATCHED = 1;

class LazyDfa implements AsciiDfa {
  /** ASCII code → byte class: characters no NFA node tells apart share one. */
  private readonly classOf = new Uint8Array(128);
  /** A character of each byte class. */
  private readonly representative: number[] = [];
  /** How many byte classes there are. */
  private readonly width: number;
  /** Row of a state (state × width) + byte class → row of the next state; -1 until computed. */
  private next: Int32Array;
  /** Whether a state's pending `$`s, at the end of a non-empty text, lead to a match. */
  private acceptAtEnd: Uint8Array;
  /** The NFA nodes of each state (CHAR nodes and pending EOL nodes), sorted. */
  private nodesOf: number[][] = [];
  private readonly stateOf = new Map<string, number>();
  /** The closure at the text's start, and its state (a new one after each emptying). */
  private readonly startClosure: { nodes: number[]; matched: boolean };
  private start = DEAD;
  /** The closure anywhere but at the text's start, and its state. */
  private readonly restartClosure: { nodes: number[]; matched: boolean };
  private restart = DEAD;
  private readonly emptyMatches: boolean;
  /** How many times the table was emptied. */
  private emptied = 0;
  /** The literal `testPacked` looks for before stepping, if any. */
  private readonly skip: string | undefined;
  /** Visit marks of the closure, one generation per closure. */
  private readonly mark: Uint32Array;
  private generation = 0;

  constructor(
    private readonly nfa: Nfa,
    private readonly entry: number,
    /**
     * Text every match starts with, if any: no match starts before its first occurrence, so
     * the search starts there (found by the engine's own substring search).
     */
    private readonly lead: string | undefined,
    /**
     * Text every match contains: a string without one of them is no match, told by the
     * engine's own substring search, far faster than stepping through the automaton.
     */
    private readonly literals: string[],
  ) {
    // Over many texts one literal is looked for: the leading one, which also tells where a
    // match may start, or else the longest (likely the rarest); the automaton checks the rest.
    this.skip = lead ?? literals.reduce<string | undefined>((a, b) => (a === undefined || b.length > a.length ? b : a), undefined);
    this.mark = new Uint32Array(nfa.kind.length);
    const signatures = new Map<string, number>();
    const sets = [...new Set(nfa.set.filter((s): s is CharSet => s !== undefined))];
    for (let c = 0; c < 128; c++) {
      const signature = sets.map((s) => s[c]).join('');
      let cls = signatures.get(signature);
      if (cls === undefined) {
        cls = signatures.size;
        signatures.set(signature, cls);
        this.representative.push(c);
      }
      this.classOf[c] = cls;
    }
    this.width = this.representative.length;
    this.next = new Int32Array(16 * this.width);
    this.acceptAtEnd = new Uint8Array(16);
    this.startClosure = this.closure([entry], true, false);
    this.restartClosure = this.closure([entry], false, false);
    this.clear();
    this.emptyMatches = this.closure([entry], true, true).matched;
  }

  /** Empties the table but for DEAD and MATCHED, and adds the start states again. */
  private clear(): void {
    this.next.fill(-1);
    this.nodesOf = [];
    this.stateOf.clear();
    // DEAD and MATCHED stay where they are on every character.
    this.addState([], false);
    this.addState([], true);
    this.next.fill(DEAD * this.width, DEAD * this.width, (DEAD + 1) * this.width);
    this.next.fill(MATCHED * this.width, MATCHED * this.width, (MATCHED + 1) * this.width);
    this.start = this.stateFor(this.startClosure);
    this.restart = this.stateFor(this.restartClosure);
  }

  test(s: string): boolean | undefined {
    const length = s.length;
    if (length === 0) return this.emptyMatches;
    for (let k = 0; k < this.literals.length; k++) if (!s.includes(this.literals[k])) return false;
    // Rows rather than states, so that the loop has no multiplication: a row is state × width.
    const classOf = this.classOf;
    const matchedRow = this.width * MATCHED;
    let next = this.next;
    let from = 0;
    let row = this.start * this.width;
    if (this.lead !== undefined) {
      from = s.indexOf(this.lead);
      if (from < 0) return false;
      if (from > 0) row = this.restart * this.width;
    }
    for (let i = from; i < length; i++) {
      const c = s.charCodeAt(i);
      if (c > 127) return undefined;
      let to = next[row + classOf[c]];
      if (to < 0) {
        to = this.step(row / this.width, classOf[c]);
        next = this.next;
      }
      row = to;
      if (row <= matchedRow) return row === matchedRow;
    }
    return this.acceptAtEnd[row / this.width] === 1;
  }

  testPacked(texts: PackedTexts, from: number, to: number, matched: (k: number) => void, undecided: (k: number) => void): void {
    const { bytes, starts } = texts;
    const classOf = this.classOf;
    const width = this.width;
    const matchedRow = width * MATCHED;
    const skip = this.skip;
    const leads = this.lead !== undefined;
    const text = skip === undefined ? '' : texts.latin1();
    const end = starts[to];
    let next = this.next;
    // Read again after each new state: emptying the table makes new start states.
    let startRow = this.start * width;
    let restartRow = this.restart * width;
    // With a leading literal, back in the state of no match under way (restartRow), the next
    // match starts at the literal's next occurrence: found by search rather than by steps.
    let idle = leads ? restartRow : -1;
    // The literal's next occurrence when already found past the text being stepped; -1 if not.
    let found = -1;
    let k = from;
    while (k < to) {
      let i = starts[k];
      const stop = starts[k + 1] - 1;
      let row = startRow;
      if (skip !== undefined) {
        // Every text before the literal's next occurrence lacks it, so matches nothing. Each
        // search starts past the texts already decided, so the buffer is searched once in all.
        const at = found >= 0 ? found : text.indexOf(skip, i);
        found = -1;
        if (at < 0 || at >= end) return;
        if (at >= stop) {
          while (starts[k + 1] <= at) k++;
          continue;
        }
        if (leads) {
          if (at > i) row = restartRow;
          i = at;
        }
      } else if (i === stop) {
        if (this.emptyMatches) matched(k);
        k++;
        continue;
      }
      let decided = true;
      for (; i < stop; i++) {
        const c = bytes[i];
        if (c > 127) {
          decided = false;
          break;
        }
        let target = next[row + classOf[c]];
        if (target < 0) {
          target = this.step(row / width, classOf[c]);
          next = this.next;
          startRow = this.start * width;
          restartRow = this.restart * width;
          if (leads) idle = restartRow;
        }
        row = target;
        if (row <= matchedRow) break;
        if (row === idle) {
          const at = text.indexOf(skip!, i + 1);
          if (at < 0 || at >= stop) {
            found = at < 0 ? end : at;
            row = DEAD;
            break;
          }
          i = at - 1;
        }
      }
      if (!decided) undecided(k);
      else if (row === matchedRow || (row > matchedRow && this.acceptAtEnd[row / width] === 1)) matched(k);
      k++;
    }
  }

  /** Computes and records the row of the state after `state` on byte class `cls`. */
  private step(state: number, cls: number): number {
    const c = this.representative[cls];
    const moved: number[] = [];
    for (const n of this.nodesOf[state]) if (this.nfa.kind[n] === CHAR && this.nfa.set[n]![c]) moved.push(this.nfa.out1[n]);
    // The search is unanchored: a match may also start after this character.
    moved.push(this.entry);
    const emptied = this.emptied;
    const to = this.stateFor(this.closure(moved, false, false));
    // After an emptying `state` is gone: only the new state is kept.
    if (this.emptied === emptied) this.next[state * this.width + cls] = to * this.width;
    return to * this.width;
  }

  /**
   * The nodes reached from `from` through empty moves, `^` passing only at the text's start and
   * `$` only at its end (else kept, pending); whether MATCH was reached.
   */
  private closure(from: number[], atStart: boolean, atEnd: boolean): { nodes: number[]; matched: boolean } {
    const { kind, out1, out2 } = this.nfa;
    const mark = this.mark;
    const gen = ++this.generation;
    const nodes: number[] = [];
    let matched = false;
    const stack = from.slice();
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (mark[n] === gen) continue;
      mark[n] = gen;
      switch (kind[n]) {
        case CHAR:
          nodes.push(n);
          break;
        case SPLIT:
          stack.push(out2[n], out1[n]);
          break;
        case BOL:
          if (atStart) stack.push(out1[n]);
          break;
        case EOL:
          if (atEnd) stack.push(out1[n]);
          else nodes.push(n);
          break;
        case MATCH:
          matched = true;
          break;
      }
    }
    return { nodes: nodes.sort((a, b) => a - b), matched };
  }

  /** The state of a closure, added when new (after emptying the table when it is full). */
  private stateFor({ nodes, matched }: { nodes: number[]; matched: boolean }): number {
    if (matched) return MATCHED;
    if (nodes.length === 0) return DEAD;
    const key = nodes.join(',');
    const known = this.stateOf.get(key);
    if (known !== undefined) return known;
    if ((this.nodesOf.length + 1) * this.width > MAX_TABLE_ENTRIES) {
      this.emptied++;
      this.clear();
      const again = this.stateOf.get(key);
      if (again !== undefined) return again;
    }
    const pending = nodes.filter((n) => this.nfa.kind[n] === EOL);
    const accept = pending.length > 0 && this.closure(pending, false, true).matched;
    const state = this.addState(nodes, accept);
    this.stateOf.set(key, state);
    return state;
  }

  private addState(nodes: number[], acceptAtEnd: boolean): number {
    const state = this.nodesOf.length;
    this.nodesOf.push(nodes);
    if ((state + 1) * this.width > this.next.length) {
      // Doubled, but never past the bound: a table is at most MAX_TABLE_ENTRIES.
      const rows = Math.max(state + 1, Math.min(2 * this.acceptAtEnd.length, Math.floor(MAX_TABLE_ENTRIES / this.width)));
      const grown = new Int32Array(rows * this.width).fill(-1);
      grown.set(this.next);
      this.next = grown;
      const accept = new Uint8Array(rows);
      accept.set(this.acceptAtEnd);
      this.acceptAtEnd = accept;
    }
    this.acceptAtEnd[state] = acceptAtEnd ? 1 : 0;
    return state;
  }
}

/**
 * Text every match contains: each run of single characters in the regex's top-level
 * concatenation (groups without a repeat or `|` are part of it), but for the run right after a
 * leading `^`, which the automaton rejects in as many steps as a substring search would; and
 * whether every match starts with the first of them (the regex starts with it).
 */
function requiredLiterals(ast: Ast): { literals: string[]; leading: boolean } {
  const flat: Ast[] = [];
  const flatten = (a: Ast): void => {
    if (a.t === 'cat') a.parts.forEach(flatten);
    else flat.push(a);
  };
  flatten(ast);
  const runs: string[] = [];
  let run = '';
  let anchoredRun = flat[0]?.t === 'bol';
  for (const a of flat) {
    const single = a.t === 'set' ? singleChar(a.set) : undefined;
    if (single !== undefined) {
      run += single;
      continue;
    }
    if (run !== '' && !anchoredRun) runs.push(run);
    if (a.t !== 'bol') anchoredRun = false;
    run = '';
  }
  if (run !== '' && !anchoredRun) runs.push(run);
  const first = flat[0];
  return { literals: runs, leading: first?.t === 'set' && singleChar(first.set) !== undefined };
}

/** The one character of `set`; undefined when it has none or several. */
function singleChar(set: CharSet): string | undefined {
  let found: number | undefined;
  for (let c = 0; c < 128; c++) {
    if (!set[c]) continue;
    if (found !== undefined) return undefined;
    found = c;
  }
  return found === undefined ? undefined : String.fromCharCode(found);
}

/**
 * The automaton of `source` (RE2 syntax, already accepted by RE2), or undefined when the regex is
 * outside the grammar above.
 */
export function asciiDfa(source: string, caseInsensitive = false): AsciiDfa | undefined {
  try {
    const ast = new Parser(source, caseInsensitive).parse();
    const nfa = new Nfa();
    const match = nfa.add(MATCH);
    const { literals, leading } = requiredLiterals(ast);
    return new LazyDfa(nfa, nfa.build(ast, match), leading ? literals[0] : undefined, leading ? literals.slice(1) : literals);
  } catch (err) {
    if (err instanceof OutsideGrammar) return undefined;
    throw err;
  }
}
