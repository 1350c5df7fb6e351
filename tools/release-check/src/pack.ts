// The packages as users get them: `npm pack` tarballs, installed into a project outside the repository.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, type PublishedPackage } from './workspace.js';

export interface Tarball {
  name: string;
  /** Absolute path of the .tgz. */
  path: string;
  /** Paths inside the package, as `npm pack --json` lists them (`package.json`, `dist/index.cjs`, ...). */
  files: string[];
}

// Asynchronous, so a test worker keeps answering vitest while npm runs.
const npm = async (args: string[], cwd: string): Promise<string> =>
  (await promisify(execFile)('npm', args, { cwd, encoding: 'utf8', maxBuffer: 64 << 20 })).stdout;

/** Packs every package (built beforehand) into `destination`, in one npm run. */
export async function packTarballs(packages: PublishedPackage[], destination: string, root = REPO_ROOT): Promise<Tarball[]> {
  const workspaces = packages.flatMap(({ dir }) => ['--workspace', dir]);
  const reports = JSON.parse(await npm(['pack', '--json', '--pack-destination', destination, ...workspaces], root)) as {
    name: string;
    filename: string;
    files: { path: string }[];
  }[];
  return packages.map(({ manifest }) => {
    const report = reports.find((r) => r.name === manifest.name);
    if (!report) throw new Error(`npm pack made no tarball for ${manifest.name}; run it in its folder to see why`);
    return { name: manifest.name, path: join(destination, report.filename), files: report.files.map((f) => f.path) };
  });
}

/**
 * A new npm project in the system temp folder (outside the repository, so no workspace link can stand in for a
 * tarball) with the tarballs and `dependencies` installed. Registry packages come from npm's cache when it has
 * them (`--prefer-offline`).
 */
export async function installOutside(tarballs: Tarball[], dependencies: string[]): Promise<string> {
  const project = mkdtempSync(join(tmpdir(), 'chimera-outside-'));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'outside-app', version: '1.0.0', private: true }, null, 2));
  await npm(['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...tarballs.map((t) => t.path), ...dependencies], project);
  return project;
}
