#!/usr/bin/env node
/**
 * Comments and docs that stand on their own (docs/decisions.md "Comments stand on their own"),
 * run by `npm run lint`. Fails, naming file and line, when a source file or document:
 *
 * - cites a tracker item ("issue 9", "issue 6 point 2", "(point 3)"): the reason belongs in
 *   the comment itself, and the tracker is not part of the repository;
 * - cites a document that is not in the repository (`choria-tasks.md`, `task-spec.md`,
 *   `toolchain.md` outside docs/, anything under `reference/`): docs/choria-compat.md,
 *   docs/task-format.md and docs/toolchain.md say what Baton relies on;
 * - cites a section (`§6.4`) without naming, just before it, the docs/ file it belongs to, or
 *   names a docs/ file or section that does not exist.
 *
 * Usage: node scripts/check-comments.mjs [root]   (default: the repository this script is in)
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..');

/** Folders never read: dependencies, generated and built code, version control. */
const SKIP_DIRS = new Set(['node_modules', 'gen', 'dist', 'dist.next', '.git']);
const CHECKED = /\.(ts|mjs|cjs|js|sh|proto|ya?ml|md|lua|pl|py)$|^Dockerfile$/;

/** This file names the patterns it looks for. */
const SELF = 'scripts/check-comments.mjs';

/** A rule: a pattern that must not appear, and what to say instead. */
const RULES = [
  { re: /\bissues? #?\d+/gi, why: 'cites an issue number; say the reason itself' },
  { re: /\(points? \d+[^)]*\)|\bpoints? \d+(?:\s*(?:and|-|–)\s*\d+)?(?=[):;,.]|\s+of\b)/gi, why: 'cites an issue point; say the reason itself' },
  { re: /choria-tasks(?:\.md)?/gi, why: 'cites a document outside the repository; cite docs/choria-compat.md' },
  { re: /task-spec(?:\.md|\s*§)/gi, why: 'cites a document outside the repository; cite docs/task-format.md' },
  { re: /task spec\s*§/gi, why: 'cites a document outside the repository; cite docs/task-format.md' },
  { re: /(?<!docs\/)\btoolchain\.md/gi, why: 'cites a document outside the repository; cite docs/toolchain.md' },
  { re: /\breference\/[\w.-]+\.md/gi, why: 'cites a document outside the repository' },
];

/** A docs/ file named in a citation. */
const DOC_REF = /\bdocs\/([\w-]+\.md)/g;
/** Any `.md` name (the nearest one before a `§` is the document it belongs to). */
const ANY_MD = /[\w./-]*\.md\b/g;
/** An empty line, or an empty comment line: the end of a paragraph. */
const BLANK_LINE = /\n[ \t]*(?:\*|\/\/|#)?[ \t]*\n/g;

/** A document citing its own sections names no file: the docs/ file itself, if `rel` is one. */
function ownSections(rel) {
  return /^docs\/[\w-]+\.md$/.test(rel) ? rel.slice('docs/'.length) : undefined;
}

function* files(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name) && !entry.name.startsWith('.')) yield* files(join(dir, entry.name));
    } else if (entry.isFile() && CHECKED.test(entry.name)) {
      yield join(dir, entry.name);
    }
  }
}

/** Line number (1-based) of a character offset. */
function lineOf(text, offset) {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

/** The headings and numbered items of a docs/ file, as the section numbers a `§` may cite. */
const sectionCache = new Map();
function sectionsOf(doc) {
  let sections = sectionCache.get(doc);
  if (!sections) {
    sections = new Set();
    const path = join(ROOT, 'docs', doc);
    if (existsSync(path)) {
      for (const line of readFileSync(path, 'utf8').split('\n')) {
        const m = /^(?:#{2,4} |\s{0,3})(\d+(?:\.\d+)*)\.?\s/.exec(line);
        if (m) sections.add(m[1]);
      }
    }
    sectionCache.set(doc, sections);
  }
  return sections;
}

const problems = [];
for (const path of files(ROOT)) {
  const rel = relative(ROOT, path).split('\\').join('/');
  if (rel === SELF) continue;
  const text = readFileSync(path, 'utf8');
  for (const { re, why } of RULES) {
    for (const m of text.matchAll(re)) problems.push(`${rel}:${lineOf(text, m.index)}: '${m[0]}' ${why}`);
  }
  for (const m of text.matchAll(DOC_REF)) {
    if (!existsSync(join(ROOT, 'docs', m[1]))) problems.push(`${rel}:${lineOf(text, m.index)}: docs/${m[1]} does not exist`);
  }
  for (const m of text.matchAll(/§\s?(\d+(?:\.\d+)*)/g)) {
    // The document a section belongs to is the nearest `.md` named before it, in the same
    // paragraph of a comment or document.
    const before = text.slice(Math.max(0, m.index - 400), m.index);
    const breaks = [...before.matchAll(BLANK_LINE)];
    const paragraph = breaks.length > 0 ? before.slice(breaks[breaks.length - 1].index) : before;
    const named = [...paragraph.matchAll(ANY_MD)].pop()?.[0];
    const doc = named === undefined ? ownSections(rel) : /(?:^|\/)docs\/([\w-]+\.md)$/.exec(named)?.[1];
    const line = lineOf(text, m.index);
    if (!doc) {
      problems.push(`${rel}:${line}: '§${m[1]}' does not say which docs/ file it cites (write docs/<file>.md §${m[1]})`);
    } else if (existsSync(join(ROOT, 'docs', doc)) && !sectionsOf(doc).has(m[1])) {
      problems.push(`${rel}:${line}: docs/${doc} has no section ${m[1]}`);
    }
  }
}

if (problems.length > 0) {
  process.stderr.write(`${problems.join('\n')}\n${problems.length} comment(s) lean on something outside the repository or a section that does not exist\n`);
  process.exit(1);
}
