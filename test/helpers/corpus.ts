import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { packageRoot } from '../../lib/package-root';

/**
 * Where the conformance corpus of real task metadata files lives. It is reference material kept
 * beside the repository, not in it, so a clone of the repository alone has none:
 * `BATON_CORPUS_DIR` names it, and without that the sibling `shared/corpus/task-metadata` of a
 * development checkout is used when present.
 */
export interface CorpusLocation {
  /** The directory, when it exists. */
  dir: string | undefined;
  /**
   * Why the corpus tests are skipped: undefined when `dir` exists. With `BATON_REQUIRE_CORPUS=1`
   * (CI) a missing corpus throws instead, so a misconfigured CI cannot pass by skipping.
   */
  skip: string | undefined;
}

/** Finds the corpus (see CorpusLocation). */
export function corpusLocation(): CorpusLocation {
  const given = process.env.BATON_CORPUS_DIR;
  const dir = given ? resolve(given) : join(packageRoot(), '..', 'shared', 'corpus', 'task-metadata');
  if (existsSync(dir)) return { dir, skip: undefined };
  const why = `the task metadata corpus is missing: no directory ${dir} (set BATON_CORPUS_DIR to the corpus's task-metadata directory)`;
  if (process.env.BATON_REQUIRE_CORPUS === '1') throw new Error(`${why}; BATON_REQUIRE_CORPUS=1 requires it`);
  return { dir: undefined, skip: why };
}
