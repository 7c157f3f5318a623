/**
 * The run benchmarks' verdicts: each goal is printed on one line with its figure and `meets` or
 * `MISSES`, and the benchmark exits non-zero when any goal was missed. A goal that could not be
 * measured because the run did not finish is missed; one skipped on purpose (a size not asked
 * for, a tool not installed) is printed as skipped and decides nothing.
 */
export class Goals {
  private missedCount = 0;

  /** Prints one goal's verdict. */
  check(goal: string, figure: string, ok: boolean): void {
    console.log(`goal: ${goal}: ${figure} — ${ok ? 'meets' : 'MISSES'}`);
    if (!ok) this.missedCount++;
  }

  /** A goal that was to be measured but could not be (the run did not finish): missed. */
  notMeasured(goal: string, why: string): void {
    console.log(`goal: ${goal}: not measured (${why}) — MISSES`);
    this.missedCount++;
  }

  /** A goal skipped on purpose; it decides nothing. */
  skipped(goal: string, why: string): void {
    console.log(`goal: ${goal}: skipped (${why})`);
  }

  /**
   * A per-node figure that must not grow with N: at every size within `factor` of the smallest
   * size's (smaller is fine: fixed costs spread over more nodes). `bySize` holds [nodes, figure]
   * of the sizes measured; `failed` says why a size asked for has no figure.
   */
  constantInN(what: string, bySize: [number, number][], factor: number, unit: string, failed?: string): void {
    const goal = `${what} constant in N (each size within ${factor}x of the smallest)`;
    const sorted = [...bySize].sort((a, b) => a[0] - b[0]);
    if (sorted.length >= 2) {
      const worst = Math.max(...sorted.map(([, v]) => v / sorted[0][1]));
      this.check(goal, sorted.map(([n, v]) => `${v.toFixed(0)} ${unit} at ${n}`).join(', '), worst <= factor);
    } else if (failed) this.notMeasured(goal, failed);
    else this.skipped(goal, 'needs two sizes');
  }

  /** Goals missed so far. */
  get missed(): number {
    return this.missedCount;
  }

  /** The exit code: 0 when every measured goal was met. */
  exitCode(): number {
    console.log(this.missedCount === 0 ? 'all measured goals met' : `${this.missedCount} goal(s) missed`);
    return this.missedCount === 0 ? 0 : 1;
  }
}

/** The median of `values` (NaN when empty). */
export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A comma-separated list of whole numbers >= `min` from environment variable `name`, or `fallback`. */
export function envSizes(name: string, fallback: number[], min = 1): number[] {
  const raw = process.env[name];
  if (!raw) return fallback;
  const values = raw.split(',').map((v) => Number(v.trim()));
  if (values.some((v) => !Number.isInteger(v) || v < min)) throw new Error(`${name}='${raw}': expected comma-separated whole numbers >= ${min}`);
  return [...new Set(values)].sort((a, b) => a - b);
}

/** A whole number >= `min` from environment variable `name`, or `fallback`. */
export function envCount(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name}='${raw}': expected a whole number >= ${min}`);
  return value;
}

/** `v` ms with no decimals. */
export const ms = (v: number): string => `${v.toFixed(0)} ms`;
