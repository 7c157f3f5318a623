import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, hostname, totalmem, type } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../lib/config';
import { builtinFacts, collectFacts, fqdn, readClassesFile, readFactsFile } from './facts';

function file(name: string, content: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'baton-facts-')), name);
  writeFileSync(path, content);
  return path;
}

describe('facts', () => {
  it('reports facter-like built-in facts from the machine', () => {
    const facts = builtinFacts('web1.example.com', '1.2.3');
    assert.equal(facts.identity, 'web1.example.com');
    assert.equal((facts.os as { family: string }).family, type());
    assert.equal(facts.kernel, type());
    assert.equal(facts.processorcount, cpus().length);
    assert.equal((facts.memory as { system: { total_bytes: number } }).system.total_bytes, totalmem());
    assert.equal(typeof (facts.memory as { system: { available_bytes: number } }).system.available_bytes, 'number');
    assert.equal(facts.fqdn, fqdn());
    assert.ok(fqdn().startsWith(hostname()), 'the FQDN begins with the host name');
    assert.match((facts.os as { release: { full: string; major: string } }).release.major, /^\S+$/);
    assert.equal(typeof facts.uptime_seconds, 'number');
    assert.equal(facts.baton_agent_version, '1.2.3');
    assert.equal(typeof facts.architecture, 'string');
  });

  it('merges a YAML or JSON facts file over the built-in facts, replacing top-level keys whole', () => {
    const yaml = readFactsFile(file('facts.yaml', 'datacenter: ams1\nos:\n  family: Debian\nroles: [web, db]\n'));
    const json = readFactsFile(file('facts.json', '{"datacenter": "fra2", "rack": 12}'));
    const merged = collectFacts('n1', '0.1.0', yaml);
    assert.equal(merged.datacenter, 'ams1');
    assert.deepEqual(merged.os, { family: 'Debian' }, 'top-level merge: the file replaces the whole os object');
    assert.deepEqual(merged.roles, ['web', 'db']);
    assert.equal(merged.identity, 'n1');
    assert.deepEqual(collectFacts('n1', '0.1.0', json).rack, 12);
  });

  it('rejects a facts file that cannot be read or is not a mapping, in one line naming the file', () => {
    const list = file('facts.yaml', '- a\n- b\n');
    assert.throws(
      () => readFactsFile(list),
      (err: Error) => err instanceof ConfigError && err.message === `facts file ${list}: expected a mapping of fact names to values`,
    );
    const broken = file('facts.json', '{"a": ');
    assert.throws(
      () => readFactsFile(broken),
      (err: Error) => err instanceof ConfigError && err.message.startsWith(`facts file ${broken}: `) && !err.message.includes('\n'),
    );
    assert.throws(() => readFactsFile('/nonexistent/facts.yaml'), /facts file \/nonexistent\/facts\.yaml: ENOENT/);
  });

  it('reads a classes file in Puppet classes.txt format: one class per line, blank lines skipped', () => {
    assert.deepEqual(readClassesFile(file('classes.txt', 'settings\nrole::web\n\n  ntp  \n')), ['settings', 'role::web', 'ntp']);
    assert.throws(
      () => readClassesFile('/nonexistent/classes.txt'),
      (err: Error) => err instanceof ConfigError && err.message === 'classes file /nonexistent/classes.txt: ENOENT',
    );
  });
});
