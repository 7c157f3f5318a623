import { chmodSync, cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../lib/package-root';

/** Writes task `<module>::<name>` (metadata and a /bin/sh script) into `modules`. */
function writeTask(modules: string, module: string, name: string, metadata: object, script: string): void {
  const dir = join(modules, module, 'tasks');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.json`), JSON.stringify(metadata));
  writeFileSync(join(dir, `${name}.sh`), script);
  chmodSync(join(dir, `${name}.sh`), 0o755);
}

/** A task script that prints its input (given on stdin) back as `{"input": ...}`. */
const PRINT_INPUT = '#!/bin/sh\ninput=$(cat)\nprintf \'{"input": %s}\\n\' "${input:-null}"\n';

/**
 * An environmentpath for the CLI tests: in production the demo module, runs::sleep,
 * `clitest::params` (a Boolean, an Array, a Hash, and a `timeout` that clashes with
 * `baton tasks run --timeout`), `clitest::typed` (bounded numbers, an Array, a Hash and an Enum, printing its input back) and
 * `clitest::big` (prints a JSON document of `kib` KiB); in staging `stg::where`.
 */
export function cliEnvironmentpath(): string {
  const root = mkdtempSync(join(tmpdir(), 'baton-cli-env-'));
  const modules = join(root, 'production', 'modules');
  cpSync(join(packageRoot(), 'examples', 'modules', 'production', 'modules', 'demo'), join(modules, 'demo'), { recursive: true });
  cpSync(join(packageRoot(), 'test', 'fixtures', 'modules', 'production', 'modules', 'runs'), join(modules, 'runs'), { recursive: true });
  writeTask(
    modules,
    'clitest',
    'params',
    {
      description: 'Prints its input back',
      input_method: 'stdin',
      parameters: {
        name: { description: 'A name', type: 'String[1]' },
        timeout: { description: 'Clashes with --timeout', type: 'Optional[Integer]' },
        force: { description: 'A switch', type: 'Optional[Boolean]' },
        tags: { description: 'Some tags', type: 'Optional[Array[String]]' },
        opts: { description: 'A hash', type: 'Optional[Hash]' },
        port: { description: 'A port', type: 'Optional[Integer[1,65535]]', default: 80 },
      },
    },
    PRINT_INPUT,
  );
  writeTask(
    modules,
    'clitest',
    'typed',
    {
      description: 'Prints its input back',
      input_method: 'stdin',
      parameters: {
        count: { type: 'Optional[Integer[1,5]]' },
        port: { type: 'Optional[Integer[1,65535]]' },
        numbers: { type: 'Optional[Array[Integer]]' },
        opts: { type: 'Optional[Hash]' },
        level: { type: "Optional[Enum['low','high']]" },
      },
    },
    PRINT_INPUT,
  );
  writeTask(
    modules,
    'clitest',
    'big',
    { description: 'Prints a JSON document of kib KiB', input_method: 'environment', parameters: { kib: { type: 'Integer[1,1000]' } } },
    "#!/bin/sh\nprintf '{\"data\": \"'\nhead -c $((PT_kib * 1024)) /dev/zero | tr '\\000' x\nprintf '\"}\\n'\n",
  );
  writeTask(
    join(root, 'staging', 'modules'),
    'stg',
    'where',
    { description: 'Says where it runs', input_method: 'environment', parameters: { zone: { type: 'String[1]' } } },
    '#!/bin/sh\nprintf \'{"zone": "%s"}\\n\' "$PT_zone"\n',
  );
  return root;
}
