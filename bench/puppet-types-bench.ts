import { Task } from '../gen/baton/v1/task';
import { compileSignature, parseType, type ParameterDeclaration } from '../lib/puppet-types';
import { validateTaskInput } from '../lib/task-input';

/**
 * Puppet type system benchmark (goal: validation of one input against a
 * compiled signature ≤ 20 µs). The signature is a realistic task: the corpus's most common
 * types plus a Struct, a Pattern, a big Integer and a default. Prints:
 * - parse + compile of the signature: the first (cold) cost, and the median of COMPILE_RUNS;
 * - Signature.validate of one valid input: median of RUNS runs of ITERATIONS each, per call;
 * - the same for an invalid input (the describer words four problems);
 * - validateTaskInput (what the scheduler calls: cache lookup by hash, validate, render);
 * - baseline: JSON.parse of the same text in the same run, and the ratio to it.
 * Run: `npm run build && npm run bench -- puppet-types-bench`.
 */

const RUNS = 7;
const ITERATIONS = 20_000;
const COMPILE_RUNS = 50;
const GOAL_US = 20;

const PARAMETERS: Record<string, ParameterDeclaration> = {
  action: { type: 'Enum[install, status, uninstall, upgrade]' },
  name: { type: 'String[1]' },
  version: { type: 'Optional[String[1]]' },
  manager: { type: 'Optional[String]' },
  options: { type: 'Optional[Array[Pattern[/\\w+=\\w+/]]]' },
  force: { type: 'Optional[Boolean]' },
  timeout: { type: 'Optional[Integer[1]]', default: 120 },
  size: { type: 'Optional[Pattern[/^[0-9]+(\\.[0-9]+)?[KMGTPEkmgtpe]/]]' },
  tls: { type: "Optional[Struct[{port => Integer[1, 65535], Optional['ca'] => String[1], verify => Boolean}]]" },
  id: { type: 'Integer' },
  flag: { type: "Optional[Variant[Boolean, Enum['true','false']]]" },
};

// The id is appended as text: a JavaScript number cannot hold it (docs/task-format.md §7.1).
const VALID = `${JSON.stringify({
  action: 'install',
  name: 'httpd',
  version: '2.4.58',
  options: ['a=b', 'c=d'],
  force: true,
  size: '10G',
  tls: { port: 8443, ca: '/etc/ca.pem', verify: true },
  flag: 'false',
}).slice(0, -1)}, "id": 123456789012345678901234567890}`;
const INVALID = '{"action": "reinstall", "name": "", "timeout": 0, "tls": {"port": 8443.0, "verify": true}, "id": 1}';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median over RUNS of the mean µs per call of `fn` over ITERATIONS calls. */
function measure(fn: () => unknown): number {
  for (let i = 0; i < ITERATIONS / 4; i++) fn(); // warm-up: JIT and caches
  const perCall: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < ITERATIONS; i++) fn();
    perCall.push(Number(process.hrtime.bigint() - t0) / 1e3 / ITERATIONS);
  }
  return median(perCall);
}

function main(): void {
  const cold0 = process.hrtime.bigint();
  const signature = compileSignature(PARAMETERS);
  const coldMs = Number(process.hrtime.bigint() - cold0) / 1e6;
  const compiles: number[] = [];
  for (let i = 0; i < COMPILE_RUNS; i++) {
    const t0 = process.hrtime.bigint();
    const s = compileSignature(PARAMETERS);
    compiles.push(Number(process.hrtime.bigint() - t0) / 1e6);
    s.dispose();
  }
  const parseUs = measure(() => Object.values(PARAMETERS).forEach((p) => parseType(p.type!)));

  if (signature.validate(VALID).violations.length !== 0) throw new Error(`the valid input is refused: ${JSON.stringify(signature.validate(VALID).violations)}`);
  const invalidCount = signature.validate(INVALID).violations.length;
  if (invalidCount === 0) throw new Error('the invalid input is accepted');

  const task = Task.fromPartial({
    name: 'bench::package',
    environment: 'production',
    parametersDeclared: true,
    parameters: Object.entries(PARAMETERS).map(([name, p]) => ({ name, type: p.type, defaultValue: p.default, required: false })),
  });
  if (validateTaskInput(task, VALID).violations.length !== 0) throw new Error('validateTaskInput refuses the valid input');

  const validUs = measure(() => signature.validate(VALID));
  const invalidUs = measure(() => signature.validate(INVALID));
  const taskInputUs = measure(() => validateTaskInput(task, VALID));
  const baselineUs = measure(() => JSON.parse(VALID) as unknown);

  console.log(`signature: ${Object.keys(PARAMETERS).length} parameters; input ${VALID.length} bytes`);
  console.log(`parse + compile (first, cold):          ${coldMs.toFixed(2)} ms`);
  console.log(`parse + compile (median of ${COMPILE_RUNS}):        ${median(compiles).toFixed(3)} ms`);
  console.log(`parse of the ${Object.keys(PARAMETERS).length} type strings:          ${parseUs.toFixed(2)} µs`);
  console.log(
    `validate, valid input:                  ${validUs.toFixed(2)} µs per call (median of ${RUNS} × ${ITERATIONS}); goal ≤ ${GOAL_US} µs: ${validUs <= GOAL_US ? 'met' : 'NOT met'}`,
  );
  console.log(`validate, invalid input (${invalidCount} problems):  ${invalidUs.toFixed(2)} µs per call`);
  console.log(`validateTaskInput (cache + render):     ${taskInputUs.toFixed(2)} µs per call`);
  console.log(`baseline JSON.parse of the same text:   ${baselineUs.toFixed(2)} µs per call; validate/JSON.parse = ${(validUs / baselineUs).toFixed(1)}×`);
}

main();
