import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { packageRoot } from '../lib/package-root';

/** The production source files (not tests) of the repository's pieces and lib/. */
function productionFiles(): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) files.push(path);
    }
  };
  for (const dir of ['lib', 'services', 'agent', 'cli']) walk(join(packageRoot(), dir));
  return files;
}

/** The relative imports of `file` (type-only ones too: they tie the files' designs together), as files. */
function relativeImports(file: string): string[] {
  const found: string[] = [];
  for (const m of readFileSync(file, 'utf8').matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+'(\.[^']*)'/gm)) {
    const target = resolve(dirname(file), m[1]);
    if (existsSync(`${target}.ts`)) found.push(`${target}.ts`);
    else if (existsSync(join(target, 'index.ts'))) found.push(join(target, 'index.ts'));
  }
  return found;
}

/** The import cycles among `files`: each strongly connected group of more than one file (Tarjan). */
function importCycles(files: string[]): string[][] {
  const edges = new Map(files.map((f) => [f, relativeImports(f)]));
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const group: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      group.push(w);
    } while (w !== v);
    if (group.length > 1) cycles.push(group);
  };
  for (const f of files) if (!index.has(f)) visit(f);
  return cycles;
}

/** Lints a snippet as if it were the file `filePath` of the repository, with the repository's rules. */
async function importErrors(filePath: string, code: string): Promise<string[]> {
  const eslint = new ESLint({
    cwd: packageRoot(),
    // The snippet is not on disk, so type-aware rules cannot run; the boundary rule needs no types.
    overrideConfig: [{ ...tseslint.configs.disableTypeChecked, languageOptions: { parserOptions: { projectService: false, project: null } } }],
  });
  const [result] = await eslint.lintText(code, { filePath });
  return result.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('architecture', () => {
  it('forbids a service from importing another service, the agent or the CLI', async () => {
    const errors = await importErrors(
      'services/metadata/probe.ts',
      "import { a } from '../scheduler/node-index';\nimport { b } from '../../services/results/run-status';\nimport { c } from '../../agent/spool';\nimport { d } from '../../cli/main';\nexport const all = [a, b, c, d];\n",
    );
    assert.equal(errors.length, 4, errors.join('\n'));
    assert.match(errors[0], /services\/metadata must not import services\/scheduler/);
  });

  it('lets a service import lib/ and the generated code', async () => {
    const errors = await importErrors(
      'services/results/probe.ts',
      "import { RedisKeys } from '../../lib/redis';\nimport { Run } from '../../gen/baton/v1/run';\nexport const all = [RedisKeys, Run];\n",
    );
    assert.deepEqual(errors, []);
  });
  it('keeps test code out of production files and lets tests use it', async () => {
    const helper = "import { waitFor } from '../../test/helpers/wait';\nexport const all = [waitFor];\n";
    const production = await importErrors('services/scheduler/probe.ts', helper);
    assert.equal(production.length, 1, production.join('\n'));
    assert.match(production[0], /production code must not import test code/);
    const library = await importErrors('lib/probe.ts', "import { waitFor } from '../test/helpers/wait';\nexport const all = [waitFor];\n");
    assert.match(library.join('\n'), /production code must not import test code/);
    assert.deepEqual(await importErrors('services/scheduler/probe.test.ts', helper), []);
  });

  it('forbids lib/ from importing any piece', async () => {
    const errors = await importErrors('lib/probe.ts', "import { a } from '../services/scheduler/node-index';\nexport const all = [a];\n");
    assert.equal(errors.length, 1, errors.join('\n'));
  });

  it('has no import cycles among production files', () => {
    const cycles = importCycles(productionFiles()).map((group) => group.map((f) => relative(packageRoot(), f)).join(' <-> '));
    assert.deepEqual(cycles, [], `import cycles (a file's design should not lean on one that leans back):\n${cycles.join('\n')}`);
  });
});
