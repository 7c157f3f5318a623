import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../lib/package-root';
import { ms } from './goals';

/**
 * Reads a V8 .cpuprofile (written by `node --cpu-prof`) and ranks where the CPU went: self
 * time per function and per source file, so a benchmark can say which code to make cheaper.
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** One ranked entry: a function or a file, its self time in ms and its share of the busy time. */
export interface ProfileEntry {
  name: string;
  selfMs: number;
  share: number;
}

/** A profile's busy time (everything but idle) and its top functions and files by self time. */
export interface ProfileSummary {
  busyMs: number;
  gcMs: number;
  functions: ProfileEntry[];
  files: ProfileEntry[];
  /** Baton's own functions (not node_modules, not Node's) by inclusive time: their code and what it calls synchronously. */
  own: ProfileEntry[];
}

/** Pseudo-frames that are not code: idle time is left out of the busy time. */
const IDLE = '(idle)';

function shortUrl(url: string, root: string): string {
  const path = url.replace(/^file:\/\//, '');
  if (path.startsWith(root)) return path.slice(root.length + 1);
  return path || '(native)';
}

/** Baton's compiled code under `root` (dist/), not its dependencies or generated code. */
function isOwnCode(url: string, root: string): boolean {
  const path = url.replace(/^file:\/\//, '');
  return path.startsWith(root) && !path.includes('/node_modules/') && !path.includes('/dist/gen/');
}

/** Summarises the profile at `path`; `root` is cut from file names; `top` entries of each list. */
export function summariseCpuProfile(path: string, root: string, top = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inclusive = new Map<string, number>();
  const perFunction = new Map<string, number>();
  const perFile = new Map<string, number>();
  let busyUs = 0;
  let gcUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]);
    const us = profile.timeDeltas[i] ?? 0;
    if (!node || node.callFrame.functionName === IDLE) continue;
    busyUs += us;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(garbage collector)') gcUs += us;
    const file = shortUrl(url, root);
    const fn = `${functionName || '(anonymous)'} ${url ? `${file}:${lineNumber + 1}` : ''}`.trim();
    perFunction.set(fn, (perFunction.get(fn) ?? 0) + us);
    perFile.set(file, (perFile.get(file) ?? 0) + us);
    // Every own function on this sample's stack, once each (recursion counts once).
    const onStack = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)?.callFrame;
      if (!frame || !isOwnCode(frame.url, root)) continue;
      onStack.add(`${frame.functionName || '(anonymous)'} ${shortUrl(frame.url, root)}:${frame.lineNumber + 1}`);
    }
    for (const f of onStack) inclusive.set(f, (inclusive.get(f) ?? 0) + us);
  }
  const rank = (m: Map<string, number>): ProfileEntry[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, selfMs: us / 1000, share: busyUs > 0 ? us / busyUs : 0 }));
  return { busyMs: busyUs / 1000, gcMs: gcUs / 1000, functions: rank(perFunction), files: rank(perFile), own: rank(inclusive) };
}

/** Prints where the CPU of each process of `names` went, from its profile in `dir` (found by the pid in its file name). */
export function printProfiles(dir: string, pids: Record<string, number>, names: string[]): void {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  for (const service of names) {
    const file = files.find((f) => f.includes(`.${pids[service]}.`));
    if (!file) {
      console.log(`  no profile of the ${service} (pid ${pids[service]}) in ${dir}`);
      continue;
    }
    const s = summariseCpuProfile(join(dir, file), packageRoot());
    console.log(`\n  ${service} profile (${join(dir, file)}): busy ${ms(s.busyMs)}, of which GC ${ms(s.gcMs)}`);
    console.log('    top functions by self time:');
    for (const e of s.functions) console.log(`      ${(e.share * 100).toFixed(1).padStart(5)} %  ${e.selfMs.toFixed(0).padStart(6)} ms  ${e.name}`);
    console.log('    top files by self time:');
    for (const e of s.files) console.log(`      ${(e.share * 100).toFixed(1).padStart(5)} %  ${e.selfMs.toFixed(0).padStart(6)} ms  ${e.name}`);
    console.log("    Baton's own functions by inclusive time (synchronous callees included):");
    for (const e of s.own) console.log(`      ${(e.share * 100).toFixed(1).padStart(5)} %  ${e.selfMs.toFixed(0).padStart(6)} ms  ${e.name}`);
  }
}
