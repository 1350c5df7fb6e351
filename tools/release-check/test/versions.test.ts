// A release gives every package the bump its changesets ask for (issue 13: "*" peer ranges and a misspelled
// config key made `changeset version` publish minor changes as 1.0.0).
import { describe, expect, it } from 'vitest';
import { askedBumps, dryRunRelease, expectedVersion, peerRangeProblems } from '../src/version-plan.js';
import { publishedPackages } from '../src/workspace.js';

describe('release versions', () => {
  const packages = publishedPackages();

  it('peer ranges between Chimera packages hold the current version and stop before the next major', () => {
    expect(packages.length).toBeGreaterThanOrEqual(5);
    expect(peerRangeProblems(packages)).toEqual([]);
  });

  it('rejects the ranges that break releases', () => {
    const core = { dir: 'packages/core', manifest: { name: '@chimera/core', version: '0.1.0' } };
    const llm = (range: string) => ({ dir: 'packages/llm', manifest: { name: '@chimera/llm', version: '0.1.0', peerDependencies: { '@chimera/core': range } } });
    expect(peerRangeProblems([core, llm('^0')])).toEqual([]);
    expect(peerRangeProblems([core, llm('*')])[0]).toMatch(/accepts @chimera\/core's next major 1\.0\.0/);
    expect(peerRangeProblems([core, llm('>=0.1.0')])).toHaveLength(1);
    expect(peerRangeProblems([core, llm('^0.2.0')])[0]).toMatch(/does not contain @chimera\/core's version 0\.1\.0/);
  });

  it('changeset status and a dry-run changeset version give each package the bump its changesets ask for', async () => {
    const asked = askedBumps();
    expect(asked.size).toBeGreaterThan(0);
    const { status, versions } = await dryRunRelease();
    for (const { manifest } of packages) {
      const bump = asked.get(manifest.name);
      const want = expectedVersion(manifest.version, bump);
      expect({ name: manifest.name, status: status.get(manifest.name) ?? 'none', version: versions.get(manifest.name) }).toEqual({
        name: manifest.name,
        status: bump ?? 'none',
        version: want,
      });
    }
  });
});
