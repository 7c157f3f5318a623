#!/usr/bin/env node
// Lint of the Redis Lua scripts, run by `npm run lint`: luacheck over every `.lua` file
// (settings in .luacheckrc: Lua 5.1 and Redis's globals), and each file's name and header as
// lib/lua-script.ts `LuaScript.fromFile` describes them: `<what-it-does>-<key count>.lua`, or
// `<what-it-does>-<N>plus.lua` for N fixed keys followed by a number that varies per call
// (one per node, per leaf...), opening with a `--[[ ... ]]` header that states the purpose,
// documents each KEYS[i] up to the key count (and, for `plus`, the keys after them) and the
// ARGV the script reads, and says what it returns. A script with a fixed key count may not
// index KEYS beyond it.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const SKIP_DIRS = new Set(['node_modules', 'gen', 'dist', 'dist.next', '.git']);

function* luaFiles(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name) && !entry.name.startsWith('.') && !entry.name.startsWith('dist.old-')) yield* luaFiles(join(dir, entry.name));
    } else if (entry.name.endsWith('.lua')) {
      yield join(dir, entry.name);
    }
  }
}

const problems = [];
const files = [...luaFiles(root)];
for (const path of files) {
  const rel = relative(root, path);
  const text = readFileSync(path, 'utf8');
  const name = /^[a-z][a-z0-9-]*-(\d+)(plus)?\.lua$/.exec(path.split('/').pop());
  if (!name) {
    problems.push(`${rel}: name it <what-it-does>-<key count>.lua (or <what-it-does>-<N>plus.lua for N keys and then a varying number)`);
    continue;
  }
  const opening = /^--\[\[\n([\s\S]*?)\n\]\]\n/.exec(text);
  const header = opening?.[1];
  if (header === undefined) {
    problems.push(`${rel}: must open with a --[[ ... ]] header (purpose, KEYS, ARGV, result)`);
    continue;
  }
  const body = text.slice(opening[0].length);
  if (!/^Purpose: \S/m.test(header)) problems.push(`${rel}: the header has no 'Purpose:' line`);
  if (!/^Result: +\S/m.test(header)) problems.push(`${rel}: the header has no 'Result:' line`);
  const keys = Number(name[1]);
  for (let k = 1; k <= keys; k++) {
    if (!header.includes(`KEYS[${k}]`)) problems.push(`${rel}: the header does not document KEYS[${k}] (the name says ${keys} keys)`);
  }
  const varying = name[2] === 'plus';
  if (varying && !new RegExp(`KEYS\\[(${keys + 1}|${keys} *\\+)`).test(header)) {
    problems.push(`${rel}: the header does not document the keys after KEYS[${keys}] (KEYS[${keys} + i] or KEYS[${keys + 1}]...)`);
  }
  if (!varying && keys === 0 && /\bKEYS\b/.test(body)) problems.push(`${rel}: uses KEYS, but the name says it takes none`);
  if (!varying) {
    for (const m of body.matchAll(/\bKEYS\[(\d+)\]/g)) {
      if (Number(m[1]) > keys) problems.push(`${rel}: uses KEYS[${m[1]}], but the name says ${keys} keys`);
    }
  }
  if (/\bARGV\b/.test(body) && !/ARGV\[/.test(header)) problems.push(`${rel}: uses ARGV, but the header documents none`);
}

// A script built from a string in TypeScript escapes all of the above: only lib/lua-script.ts
// (fromFile) and tests may construct one.
const SOURCE_DIRS = ['lib', 'services', 'agent', 'cli', 'bench'];
function* tsFiles(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) yield* tsFiles(join(dir, entry.name));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) yield join(dir, entry.name);
  }
}
for (const dir of SOURCE_DIRS) {
  for (const path of tsFiles(join(root, dir))) {
    const rel = relative(root, path);
    if (rel === join('lib', 'lua-script.ts')) continue;
    if (/new LuaScript\(/.test(readFileSync(path, 'utf8')))
      problems.push(`${rel}: a Redis script goes in its own .lua file, read with LuaScript.fromFile(__dirname, '<name>')`);
  }
}

if (files.length > 0) {
  try {
    execFileSync('luacheck', ['--quiet', '--no-color', '--codes', ...files.map((f) => relative(root, f))], { cwd: root, stdio: 'inherit' });
  } catch (err) {
    if (err.code === 'ENOENT') problems.push('luacheck is not installed: run scripts/install-deps.sh (Debian package lua-check)');
    else problems.push('luacheck found problems (above)');
  }
}

if (problems.length > 0) {
  process.stderr.write(`${problems.join('\n')}\n`);
  process.exit(1);
}
