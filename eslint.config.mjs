// ESLint: typescript-eslint's type-checked rules, plus the architecture rule that a service
// talks to the others only over gRPC (it may import lib/ and gen/, never another service).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const PIECES = ['services/metadata', 'services/scheduler', 'services/results', 'agent', 'cli'];

/** Imports of the test code (test/ and its helpers): only tests and benchmarks may use them. */
const TEST_CODE = {
  group: ['**/test/**', '**/test'],
  message: 'production code must not import test code: the image ships without it; move what both need to lib/.',
};

/** The patterns forbidding `piece` to import every other piece. */
function otherPieces(piece) {
  return PIECES.filter((other) => other !== piece).map((other) => ({
    group: [`**/${other}`, `**/${other}/**`, ...(other.startsWith('services/') ? [`**/${other.split('/')[1]}/**`] : [])],
    message: `${piece} must not import ${other}: pieces talk over gRPC; share code through lib/.`,
  }));
}

/**
 * Per piece: its tests may import test helpers; its other files may not (a later block wins
 * for the files it matches). lib/ is shared by every piece, so it imports none of them.
 */
const boundaries = [
  ...PIECES.flatMap((piece) => [
    { files: [`${piece}/**/*.ts`], rules: { 'no-restricted-imports': ['error', { patterns: otherPieces(piece) }] } },
    { files: [`${piece}/**/*.ts`], ignores: ['**/*.test.ts'], rules: { 'no-restricted-imports': ['error', { patterns: [...otherPieces(piece), TEST_CODE] }] } },
  ]),
  {
    files: ['lib/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [...otherPieces('lib'), TEST_CODE] }] },
  },
];

export default tseslint.config(
  { ignores: ['dist/**', 'dist.next/**', 'dist.old-*/**', 'gen/**', 'node_modules/**', '.baton-dev/**', '**/*.mjs', '**/*.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's describe/it return promises the runner itself tracks.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'before', 'after', 'beforeEach', 'afterEach', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      // lib/grpc-client.ts `unary(client, client.method, ...)` takes generated client methods
      // unbound on purpose and calls them with `method.call(client, ...)`.
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  ...boundaries,
);
