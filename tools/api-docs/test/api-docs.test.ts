// CI's check that the API reference is complete: typedoc's validation over every published package must log
// nothing (an undocumented export, a referenced but unexported type, a broken {@link} fail here by name).
import { readdirSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkApiDocs } from '../src/check-api-docs';

const packagesDir = join(import.meta.dirname, '..', '..', '..', 'packages');
const publishedPackages = readdirSync(packagesDir).filter((name) => {
  const manifest = join(packagesDir, name, 'package.json');
  return existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).private !== true;
});

describe('API reference', () => {
  it('finds the published packages', () => {
    expect(publishedPackages).toEqual(expect.arrayContaining(['core', 'llm', 'vision-encoder', 'fusion', 'audio-encoder']));
  });

  it.each(publishedPackages)('%s documents every export', async (name) => {
    const report = await checkApiDocs(join(packagesDir, name));
    expect(report.documentedCount).toBeGreaterThan(0);
    expect(report.problems, `typedoc in packages/${name}:\n${report.problems.join('\n')}`).toEqual([]);
  });
});
