import { readFileSync } from 'node:fs';
import { cpus, hostname, machine, release, totalmem, type, uptime } from 'node:os';
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

/** Facts read from the machine: identity, host name, OS, kernel, CPU, memory, uptime, agent version. */
export function builtinFacts(identity: string, agentVersion: string): Facts {
  const rel = osRelease();
  // machine() is `uname -m` (`x86_64`, `aarch64`), which is what facter reports; os.arch() is
  // Node's own name for the CPU (`x64`) and would not match facter-based filters.
  const architecture = machine();
  return {
    identity,
    hostname: hostname(),
    os: {
      family: type(),
      name: rel.NAME ?? type(),
      release: { full: rel.VERSION_ID ?? release() },
      architecture,
    },
    kernel: type(),
    kernelrelease: release(),
    architecture,
    processorcount: cpus().length,
    memory: { system: { total_bytes: totalmem() } },
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
