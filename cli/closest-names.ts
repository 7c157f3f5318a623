/** Levenshtein distance between two strings (small inputs: task names). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/**
 * The names closest to `wanted`, for "did you mean" (an unknown task name should lead somewhere):
 * names containing it or contained in it first, then by edit distance, at most `limit`, and only
 * plausible ones (a distance of at most a third of the longer name, at least 2).
 */
export function closestNames(wanted: string, names: string[], limit = 3): string[] {
  const scored = names.map((name) => {
    const contains = name.includes(wanted) || wanted.includes(name) || name.split('::').includes(wanted);
    const d = distance(wanted, name);
    return { name, score: d, plausible: contains || d <= Math.max(2, Math.floor(Math.max(wanted.length, name.length) / 3)) };
  });
  return scored
    .filter((s) => s.plausible)
    .sort((a, b) => a.score - b.score || a.name.localeCompare(b.name))
    .slice(0, limit)
    .map((s) => s.name);
}
