// The published packages (every non-private workspace under packages/), split into two halves so the typedoc runs
// spread over vitest's two forks (each file is one fork): the check's wall time is about half its CPU time.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const packagesDir = join(import.meta.dirname, '..', '..', '..', 'packages');

export const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

export const publishedPackages = readdirSync(packagesDir)
  .filter((name) => {
    const manifest = join(packagesDir, name, 'package.json');
    return existsSync(manifest) && readJson(manifest).private !== true;
  })
  .sort();

/** Half `index` (0 or 1) of the packages: core (the largest) with the odd-placed others, or the even-placed ones. */
export function packageHalf(index: 0 | 1): string[] {
  const rest = publishedPackages.filter((name) => name !== 'core');
  if (index === 1) return rest.filter((_, i) => i % 2 === 0);
  return [...publishedPackages.filter((name) => name === 'core'), ...rest.filter((_, i) => i % 2 === 1)];
}
