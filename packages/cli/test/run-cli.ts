// Runs the built `chimera` bin with node, as a user's shell would, in a fresh temp folder.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../bin/chimera.js', import.meta.url));
const DIST = fileURLToPath(new URL('../dist/index.cjs', import.meta.url));

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Throws a clear error when the package has not been built (turbo builds before testing). */
export function assertBuilt(): void {
  if (!existsSync(DIST)) throw new Error(`${DIST} is missing: build first (npx turbo run build --filter=@chimera/cli...)`);
}

export function runChimera(args: readonly string[], cwd: string): CliRun {
  const child = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', timeout: 300_000, env: { ...process.env, CHIMERA_DEBUG: '1' } });
  if (child.error) throw child.error;
  return { status: child.status, stdout: child.stdout, stderr: child.stderr };
}

/** A temp folder for one test file, removed by the returned function. */
export function tempFolder(name: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `chimera-cli-${name}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
