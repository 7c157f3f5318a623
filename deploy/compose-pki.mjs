#!/usr/bin/env node
// The certificates of the compose trial (deploy/compose.yaml, its one-shot `pki` service): a CA
// and, with lib/pki.ts (the code behind `baton pki`), one certificate per process it runs, named
// as deploy/config/*.yaml and the compose variables expect. Existing files are kept, so the
// trial restarts with the same CA. For a real installation use `baton pki` (deploy/README.md).
//   node deploy/compose-pki.mjs [DIR]   (default /etc/baton/pki)
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const { createCa, issueCertificate } = require('../dist/lib/pki.js');

/** What the compose file runs: its service names are the services' DNS names there. */
export const COMPOSE_CERTIFICATES = [
  ['service', 'metadata'],
  ['service', 'results'],
  ['service', 'scheduler'],
  ['agent', 'agent1'],
  ['agent', 'agent2'],
  ['operator', 'admin'],
];

const dir = process.argv[2] ?? '/etc/baton/pki';
try {
  if (!existsSync(join(dir, 'ca.pem'))) createCa(dir);
  for (const [role, name] of COMPOSE_CERTIFICATES) {
    if (existsSync(join(dir, `${role}-${name}.pem`))) continue;
    issueCertificate(dir, role, name);
    process.stdout.write(`issued ${role} certificate ${name}\n`);
  }
} catch (err) {
  process.stderr.write(`compose-pki: ${err.message.split('\n')[0]}\n`);
  process.exit(1);
}
