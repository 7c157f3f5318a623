import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { packageRoot } from '../lib/package-root';

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
});
