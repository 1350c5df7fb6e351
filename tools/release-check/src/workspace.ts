// The repository as a release sees it: the published packages (packages/*, not private) and their manifests.
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is tools/release-check/src/workspace.ts). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The URL every package.json and README points to. A placeholder until the repository has a public remote. */
export const REPOSITORY_URL = 'https://github.com/chimera-ml/chimera';

export interface PackageManifest {
  name: string;
  version: string;
  private?: boolean;
  license?: string;
  keywords?: string[];
  homepage?: string;
  bugs?: { url?: string };
  repository?: { type?: string; url?: string; directory?: string };
  exports?: Record<string, unknown>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  [key: string]: unknown;
}

export interface PublishedPackage {
  /** Path from the repository root, e.g. `packages/llm`. */
  dir: string;
  manifest: PackageManifest;
}

export function readManifest(path: string): PackageManifest {
  return JSON.parse(readFileSync(path, 'utf8')) as PackageManifest;
}

/** Every non-private package under `packages/` of `root`, sorted by folder. */
export function publishedPackages(root = REPO_ROOT): PublishedPackage[] {
  return readdirSync(join(root, 'packages'))
    .sort()
    .map((name) => `packages/${name}`)
    .filter((dir) => existsSync(join(root, dir, 'package.json')))
    .map((dir) => ({ dir, manifest: readManifest(join(root, dir, 'package.json')) }))
    .filter((pkg) => !pkg.manifest.private);
}
