// What the registry page and `npm view` show: license text, repository, homepage, bugs, keywords, and README
// links that work outside the repository.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { publishedPackages, REPO_ROOT, REPOSITORY_URL } from '../src/workspace.js';

const packages = publishedPackages();
const rootLicense = readFileSync(join(REPO_ROOT, 'LICENSE'), 'utf8');

describe('published package metadata', () => {
  it('the root LICENSE is the Apache License 2.0 that every package declares', () => {
    expect(rootLicense).toMatch(/^\s*Apache License\s+Version 2\.0, January 2004/);
    expect(rootLicense).toContain('END OF TERMS AND CONDITIONS');
    for (const { manifest } of packages) expect({ name: manifest.name, license: manifest.license }).toEqual({ name: manifest.name, license: 'Apache-2.0' });
  });

  it.each(packages.map((p) => [p.manifest.name, p]))('%s: LICENSE, repository, homepage, bugs, keywords', (name, { dir, manifest }) => {
    // npm packs a package folder's LICENSE whatever `files` says; it must be the root's text.
    const license = join(REPO_ROOT, dir, 'LICENSE');
    expect({ name, license: existsSync(license) && readFileSync(license, 'utf8') === rootLicense }).toEqual({ name, license: true });
    expect(manifest.repository).toEqual({ type: 'git', url: `git+${REPOSITORY_URL}.git`, directory: dir });
    expect(manifest.homepage).toBe(`${REPOSITORY_URL}/tree/main/${dir}#readme`);
    expect(manifest.bugs).toEqual({ url: `${REPOSITORY_URL}/issues` });
    expect(manifest.keywords?.length ?? 0).toBeGreaterThanOrEqual(3);
  });

  it.each(packages.map((p) => [p.manifest.name, p.dir]))('%s: README links are absolute (they break on the registry page otherwise)', (_, dir) => {
    const path = join(REPO_ROOT, dir, 'README.md');
    expect(existsSync(path), `${dir}/README.md is missing: npm shows it as the package page`).toBe(true);
    const readme = readFileSync(path, 'utf8');
    const relative = [...readme.matchAll(/\]\((?!https?:\/\/|#|mailto:)([^)\s]+)\)/g)].map((m) => m[1]);
    expect(relative).toEqual([]);
  });
});
