// CI's check that the API reference is complete (first half of the packages; api-docs-rest.test.ts has the other):
// typedoc's validation over every published package must log nothing (an undocumented export, a referenced but
// unexported type, a broken {@link} fail here by name), and every entry a package exports must be one of its typedoc
// entry points.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkApiDocs } from '../src/check-api-docs';
import { packageHalf, packagesDir, publishedPackages, readJson } from './published-packages';

/** `.` -> src/index.ts, `./testing` -> src/testing/index.ts: the layout every package's tsup config follows. */
function sourceOfExport(subpath: string): string {
  return subpath === '.' ? 'src/index.ts' : `src/${subpath.slice(2)}/index.ts`;
}

describe('API reference', () => {
  it('finds the published packages, each in one half', () => {
    expect(publishedPackages).toEqual(expect.arrayContaining(['core', 'llm', 'vision-encoder', 'fusion', 'audio-encoder']));
    expect([...packageHalf(0), ...packageHalf(1)].sort()).toEqual(publishedPackages);
  });

  it('names an undocumented export (a fixture package)', async () => {
    const report = await checkApiDocs(join(import.meta.dirname, 'fixtures', 'undocumented'));
    expect(report.problems).toHaveLength(1);
    expect(report.problems[0]).toContain('undocumentedDouble');
    expect(report.problems[0]).toContain('does not have any documentation');
  });

  it.each(publishedPackages)('%s: every exported entry is a typedoc entry point', (name) => {
    const dir = join(packagesDir, name);
    const exported = Object.keys(readJson(join(dir, 'package.json')).exports ?? { '.': null })
      .filter((subpath) => subpath !== './package.json')
      .map(sourceOfExport);
    const config = join(dir, 'typedoc.json');
    expect(existsSync(config), `packages/${name} has no typedoc.json; copy another package's`).toBe(true);
    expect([...readJson(config).entryPoints].sort(), `packages/${name}/typedoc.json entryPoints`).toEqual(exported.sort());
  });

  it.each(packageHalf(0))('%s documents every export', async (name) => {
    const report = await checkApiDocs(join(packagesDir, name));
    expect(report.documentedCount).toBeGreaterThan(0);
    expect(report.problems, `typedoc in packages/${name}:\n${report.problems.join('\n')}`).toEqual([]);
  });
});
