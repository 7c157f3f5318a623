import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The repository root (the folder holding package.json), found from this file's location. */
export function packageRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`package.json not found above ${__dirname}`);
    dir = up;
  }
  return dir;
}

/**
 * The installed `baton` command's script (bin/baton), to run the CLI again as a separate
 * process; bundled or not, the CLI's own file lies elsewhere.
 */
export function batonScript(): string {
  return join(packageRoot(), 'bin', 'baton');
}
