// Writes the descriptor sets that gRPC reflection serves (lib/server-reflection.ts) into dist/proto/,
// so a built tree needs no buf at run time (production images install no dev dependencies).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { PROTO_DESCRIPTOR_SETS, buildDescriptorSet } = require('../dist/lib/server-reflection.js');
for (const set of PROTO_DESCRIPTOR_SETS) {
  const bytes = await buildDescriptorSet(set.input);
  mkdirSync(dirname(join(root, set.file)), { recursive: true });
  writeFileSync(join(root, set.file), bytes);
}
