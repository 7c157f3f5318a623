import { TypeSyntaxError } from './type-syntax-error';

/**
 * Tokens of a Puppet type expression (docs/task-format.md §7.3): the subset of the Puppet lexer
 * (`lexer2.rb`) a `type` string can use.
 */
export type TypeToken =
  | { t: 'TYPE'; text: string; pos: number }
  | { t: 'WORD'; text: string; pos: number }
  | { t: 'INTEGER'; value: bigint; pos: number }
  | { t: 'FLOAT'; value: number; pos: number }
  | { t: 'STRING'; value: string; pos: number }
  | { t: 'REGEX'; source: string; pos: number }
  | { t: 'PUNCT'; text: '[' | ']' | ',' | '{' | '}' | '=>'; pos: number }
  | { t: 'END'; pos: number };

/** Words that are syntax in Puppet, not bare-word strings (docs/task-format.md §7.3). */
const KEYWORDS = new Set([
  'case',
  'class',
  'define',
  'if',
  'elsif',
  'else',
  'inherits',
  'node',
  'and',
  'or',
  'in',
  'unless',
  'function',
  'type',
  'attr',
  'private',
  'application',
  'consumes',
  'produces',
  'site',
]);

const TYPE_NAME = /(?:::)?[A-Z]\w*(?:::[A-Z]\w*)*/y;
const BARE_WORD = /[a-z_][\w-]*/y;
const NUMBER = /-?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/y;
const DOUBLE_ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', s: ' ', '"': '"', '\\': '\\', $: '$', "'": "'" };

/** Splits `expr` into tokens; throws TypeSyntaxError at the first character that cannot start one. */
export function tokenizeType(expr: string): TypeToken[] {
  const out: TypeToken[] = [];
  let i = 0;
  const fail = (pos: number, expected: string): never => {
    throw new TypeSyntaxError(expr, pos, expected);
  };
  const sticky = (re: RegExp): string | undefined => {
    re.lastIndex = i;
    const m = re.exec(expr);
    return m ? m[0] : undefined;
  };
  while (i < expr.length) {
    const c = expr[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    const pos = i;
    if (c === '[' || c === ']' || c === ',' || c === '{' || c === '}') {
      out.push({ t: 'PUNCT', text: c, pos });
      i++;
      continue;
    }
    if (c === '=' && expr[i + 1] === '>') {
      out.push({ t: 'PUNCT', text: '=>', pos });
      i += 2;
      continue;
    }
    if (c === "'" || c === '"') {
      let value = '';
      let j = i + 1;
      for (;;) {
        if (j >= expr.length) fail(pos, `a closing ${c} for the string starting here`);
        const ch = expr[j];
        if (ch === c) break;
        if (ch === '\\' && j + 1 < expr.length) {
          const n = expr[j + 1];
          if (c === "'") value += n === "'" || n === '\\' ? n : ch + n;
          else if (n === 'u') {
            const hex = /^[0-9a-fA-F]{4}/.exec(expr.slice(j + 2));
            if (!hex) fail(j, 'four hex digits after \\u');
            value += String.fromCharCode(parseInt(hex![0], 16));
            j += 4;
          } else value += DOUBLE_ESCAPES[n] ?? ch + n;
          j += 2;
          continue;
        }
        if (c === '"' && ch === '$') fail(j, 'no interpolation in a type string (escape $ as \\$ or use single quotes)');
        value += ch;
        j++;
      }
      out.push({ t: 'STRING', value, pos });
      i = j + 1;
      continue;
    }
    if (c === '/') {
      let j = i + 1;
      let source = '';
      for (;;) {
        if (j >= expr.length || expr[j] === '\n') fail(pos, 'a closing / for the regex starting here');
        const ch = expr[j];
        if (ch === '/') break;
        if (ch === '\\' && expr[j + 1] === '/') {
          source += '/';
          j += 2;
          continue;
        }
        if (ch === '\\' && j + 1 < expr.length) {
          source += ch + expr[j + 1];
          j += 2;
          continue;
        }
        source += ch;
        j++;
      }
      out.push({ t: 'REGEX', source, pos });
      i = j + 1;
      continue;
    }
    const typeName = sticky(TYPE_NAME);
    if (typeName !== undefined) {
      i += typeName.length;
      out.push({ t: 'TYPE', text: typeName.replace(/^::/, ''), pos });
      continue;
    }
    if (/[0-9-]/.test(c)) {
      const num = sticky(NUMBER);
      if (num === undefined) fail(pos, 'a number after -');
      i += num!.length;
      if (i < expr.length && /[\w]/.test(expr[i])) fail(pos, 'a number (a word cannot start with a digit; quote it as a string)');
      if (/[.eE]/.test(num!) && !/0[xX]/.test(num!)) out.push({ t: 'FLOAT', value: Number(num), pos });
      else {
        const value = parseInteger(num!);
        if (value === undefined) fail(pos, 'an octal number (digits 0-7 after a leading 0)');
        out.push({ t: 'INTEGER', value: value!, pos });
      }
      continue;
    }
    const word = sticky(BARE_WORD);
    if (word !== undefined) {
      i += word.length;
      if (word.endsWith('-')) fail(pos, `a bare word not ending in '-' (quote '${word}' as a string)`);
      if (KEYWORDS.has(word)) fail(pos, `a value, not the Puppet keyword '${word}' (quote it as a string)`);
      out.push({ t: 'WORD', text: word, pos });
      continue;
    }
    fail(pos, `a type name, value, '[', ']', ',', '{', '}' or '=>', not '${c}'`);
  }
  out.push({ t: 'END', pos: expr.length });
  return out;
}

/** Decimal, hex (`0x1f`) or octal (`017`) integer text as Puppet's lexer reads it. */
function parseInteger(text: string): bigint | undefined {
  const neg = text.startsWith('-');
  const body = neg ? text.slice(1) : text;
  let v: bigint;
  if (/^0[xX]/.test(body)) v = BigInt(body);
  else if (body.length > 1 && body.startsWith('0')) {
    if (/[89]/.test(body)) return undefined;
    v = BigInt(`0o${body.slice(1)}`);
  } else v = BigInt(body);
  return neg ? -v : v;
}
