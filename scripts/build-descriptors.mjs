// Writes the descriptor sets that gRPC reflection serves (lib/server-reflection.ts) into the
// built tree's proto/ folder, so a built tree needs no buf at run time (production images
// install no dev dependencies). BATON_BUILD_OUT names the built tree (default dist/; the build
// compiles into dist.next/ and swaps it in afterwards).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(root, process.env.BATON_BUILD_OUT ?? 'dist');
const { PROTO_DESCRIPTOR_SETS, buildDescriptorSet } = require(join(out, 'lib', 'server-reflection.js'));
for (const set of PROTO_DESCRIPTOR_SETS) {
  const bytes = await buildDescriptorSet(set.input, set.paths);
  // set.file names the file in dist/; it goes to the same place in the tree being built.
  const file = join(out, relative('dist', set.file));
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, bytes);
}
