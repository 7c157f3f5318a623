import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, freemem, hostname, machine, release, totalmem, type, uptime } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../lib/config';

/**
 * The node's facts, sent in every Hello: a small facter-like set read from node:os, with the
 * operator's facts file merged over it. The merge is top-level only: a key in the file replaces
 * the built-in key of that name wholesale (a file with `os: {family: Debian}` replaces the
 * whole `os` object), which keeps "what will the node report" answerable by reading the file.
 */

/** Facts: a JSON object, nested like facter's (`os.family`, `memory.system.total_bytes`). */
export type Facts = Record<string, unknown>;

/** The fields of /etc/os-release (`NAME`, `VERSION_ID`, ...); empty when it cannot be read. */
function osRelease(): Record<string, string> {
  try {
    const out: Record<string, string> = {};
    for (const line of readFileSync('/etc/os-release', 'utf8').split('\n')) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
      if (m) out[m[1]] = m[2].replace(/^"(.*)"$/, '$1');
    }
    return out;
  } catch {
    return {};
  }
}

let cachedFqdn: string | undefined;

/**
 * The host's fully qualified name: `hostname -f` (the resolver's canonical name, as facter
 * reports it), else the kernel's host name. Asked once per process.
 */
export function fqdn(): string {
  if (cachedFqdn === undefined) {
    try {
      const name = execFileSync('hostname', ['-f'], { encoding: 'utf8', timeout: 2_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      cachedFqdn = name && !/\s/.test(name) ? name : hostname();
    } catch {
      cachedFqdn = hostname();
    }
  }
  return cachedFqdn;
}

/** Facts read from the machine: identity, host names, OS, kernel, CPU, memory, uptime, agent version. */
export function builtinFacts(identity: string, agentVersion: string): Facts {
  const rel = osRelease();
  // machine() is `uname -m` (`x86_64`, `aarch64`), which is what facter reports; os.arch() is
  // Node's own name for the CPU (`x64`) and would not match facter-based filters.
  const architecture = machine();
  return {
    identity,
    hostname: hostname(),
    fqdn: fqdn(),
    networking: { hostname: hostname(), fqdn: fqdn() },
    os: {
      family: type(),
      name: rel.NAME ?? type(),
      distro: { id: rel.ID ?? '', codename: rel.VERSION_CODENAME ?? '' },
      release: { full: rel.VERSION_ID ?? release(), major: (rel.VERSION_ID ?? release()).split('.')[0] },
      architecture,
    },
    kernel: type(),
    kernelrelease: release(),
    architecture,
    processorcount: cpus().length,
    processors: { count: cpus().length },
    memory: { system: { total_bytes: totalmem(), available_bytes: freemem() } },
    uptime_seconds: Math.floor(uptime()),
    baton_agent_version: agentVersion,
  };
}

/** Reads a facts file (YAML or JSON, a mapping at the top); throws ConfigError naming the file. */
export function readFactsFile(path: string): Facts {
  let doc: unknown;
  try {
    // YAML 1.2 is a superset of JSON, so one parser reads both formats.
    doc = parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`facts file ${path}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new ConfigError(`facts file ${path}: expected a mapping of fact names to values`);
  return doc as Facts;
}

/** The facts of this node: the built-in ones with the file's facts merged over them (top-level keys). */
export function collectFacts(identity: string, agentVersion: string, fileFacts: Facts = {}): Facts {
  return { ...builtinFacts(identity, agentVersion), ...fileFacts };
}

/** A Puppet class name as classes.txt lists it (`role::web`, `ntp`). */
const CLASS_NAME = /^[A-Za-z0-9_:.-]+$/;

/**
 * Reads a classes file in Puppet's `classes.txt` format (one class per line; blank lines and
 * anything that is not a class name are skipped); throws ConfigError naming the file.
 */
export function readClassesFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`classes file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => CLASS_NAME.test(l));
}
