// The second half of the API reference check (see api-docs.test.ts): its own file so it runs in the other fork.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkApiDocs } from '../src/check-api-docs';
import { packageHalf, packagesDir } from './published-packages';

describe('API reference', () => {
  it.each(packageHalf(1))('%s documents every export', async (name) => {
    const report = await checkApiDocs(join(packagesDir, name));
    expect(report.documentedCount).toBeGreaterThan(0);
    expect(report.problems, `typedoc in packages/${name}:\n${report.problems.join('\n')}`).toEqual([]);
  });
});
