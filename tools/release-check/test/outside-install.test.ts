// The packages as a user meets them: npm pack tarballs installed into a project outside the repository, where
// every README's quick start runs as an ES module and as CommonJS, and import and require share one copy of each
// package (the dual-package hazard, issue 13).
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installOutside, packTarballs, type Tarball } from '../src/pack.js';
import { quickStart, toCjs, toEsm } from '../src/quick-start.js';
import { publishedPackages, readManifest, REPO_ROOT } from '../src/workspace.js';

const packages = publishedPackages();
const rootDevDependencies = readManifest(join(REPO_ROOT, 'package.json')).devDependencies as Record<string, string>;
// What every README's install line adds next to the Chimera packages.
const userDependencies = ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm'].map((name) => `${name}@${rootDevDependencies[name]}`);

/** Runs a script with node (asynchronously: a blocked worker misses vitest's RPC deadline). */
function runNode(file: string, args: string[], cwd: string): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args], { cwd, timeout: 300_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, output: `${stdout}\n${stderr}`.trim().slice(-4000) }));
  });
}

describe('npm pack tarballs in an outside project', () => {
  let packDir = '';
  let project = '';
  let tarballs: Tarball[] = [];

  beforeAll(async () => {
    packDir = mkdtempSync(join(tmpdir(), 'chimera-pack-'));
    let start = Date.now();
    tarballs = await packTarballs(packages, packDir);
    console.log(`npm pack: ${((Date.now() - start) / 1000).toFixed(1)} s`);
    start = Date.now();
    project = await installOutside(tarballs, userDependencies);
    console.log(`npm install in the outside project: ${((Date.now() - start) / 1000).toFixed(1)} s`);
  });
  afterAll(() => {
    for (const dir of [packDir, project]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('every tarball carries LICENSE, README, both entries and their types, and no sources or tests', () => {
    expect(tarballs.map((t) => t.name)).toEqual(packages.map((p) => p.manifest.name));
    for (const { name, files } of tarballs) {
      const missing = ['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts']
        .filter((f) => !files.includes(f));
      expect({ name, missing }).toEqual({ name, missing: [] });
      expect({ name, stray: files.filter((f) => /^(src|test)\//.test(f)) }).toEqual({ name, stray: [] });
    }
  });

  it.each(packages.map((p) => [p.manifest.name, p.dir]))('%s: the README quick start runs as ESM and as CJS', async (name, dir) => {
    const readme = readFileSync(join(REPO_ROOT, dir, 'README.md'), 'utf8');
    const code = quickStart(readme, `${dir}/README.md`);
    const runs = (['mjs', 'cjs'] as const).map(async (ext) => {
      // A fresh folder per run: quick starts write relative paths (runs/, checkpoints).
      const cwd = join(project, 'quick-start', `${name.replace('/', '__')}-${ext}`);
      mkdirSync(cwd, { recursive: true });
      writeFileSync(join(cwd, `quick-start.${ext}`), ext === 'mjs' ? toEsm(code) : toCjs(code));
      const run = await runNode(`quick-start.${ext}`, [], cwd);
      return { file: `${dir}/README.md as .${ext}`, ...run };
    });
    // ESM and CJS side by side: one per core.
    const failed = (await Promise.all(runs)).filter((run) => run.status !== 0);
    expect(failed.map((run) => `${run.file} exited ${run.status}:\n${run.output}`).join('\n\n')).toBe('');
  });

  it('an ES module app that also require()s the packages sees one copy of every class and function', async () => {
    const entries = packages.flatMap(({ manifest }) =>
      Object.keys(manifest.exports ?? { '.': '' })
        .filter((key) => key !== './package.json')
        .map((key) => (key === '.' ? manifest.name : `${manifest.name}/${key.slice(2)}`)),
    );
    cpSync(join(REPO_ROOT, 'tools/release-check/src/dual-package-check.mjs'), join(project, 'dual-package-check.mjs'));
    const run = await runNode('dual-package-check.mjs', entries, project);
    const report = run.status === 0 || run.status === 1 ? (JSON.parse(run.output.split('\n')[0]!) as { compared: number; problems: string[] }) : null;
    expect({ status: run.status, problems: report?.problems ?? run.output }).toEqual({ status: 0, problems: [] });
    // Every entry point's exports were compared, not a handful.
    expect(report!.compared).toBeGreaterThan(200);
  });
});
