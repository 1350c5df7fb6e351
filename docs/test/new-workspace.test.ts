// scripts/new-workspace.mjs (docs/guides/new-workspace.md): run against a scratch copy of the repository's root
// files, then the generated package and example are type-checked with the root settings, so a template that drifts
// from the repository's conventions or APIs fails here.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../tools/snippets';

const SCRIPT = join(REPO_ROOT, 'scripts', 'new-workspace.mjs');
const ROOT_FILES = ['tsconfig.base.json', 'tsup.base.ts', 'vitest.shared.ts', 'typedoc.base.json', 'LICENSE'];
let root: string;

function generate(...args: string[]) {
  return spawnSync(process.execPath, [SCRIPT, ...args, '--root', root], { encoding: 'utf8' });
}

/** Type errors of the generated workspaces, checked as one program (their tsconfigs share the root settings). */
function typeErrors(projects: string[]): string[] {
  const configs = projects.map(
    (project) => ts.getParsedCommandLineOfConfigFile(join(project, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} })!,
  );
  const files = configs.flatMap((c) => c.fileNames);
  if (files.filter((f) => f.endsWith('.test.ts')).length !== projects.length) {
    throw new Error(`expected one test file in each of ${projects.join(', ')} (written by the tests above), found: ${files.join(', ')}`);
  }
  const program = ts.createProgram(files, configs[0]!.options);
  return ts.getPreEmitDiagnostics(program).map((d) => `${d.file?.fileName ?? ''}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`);
}

beforeAll(() => {
  mkdirSync(join(REPO_ROOT, 'docs', '.tmp'), { recursive: true });
  root = mkdtempSync(join(REPO_ROOT, 'docs', '.tmp', 'new-workspace-'));
  for (const file of ROOT_FILES) if (existsSync(join(REPO_ROOT, file))) copyFileSync(join(REPO_ROOT, file), join(root, file));
  mkdirSync(join(root, 'packages', 'core'), { recursive: true });
  copyFileSync(join(REPO_ROOT, 'packages', 'core', 'package.json'), join(root, 'packages', 'core', 'package.json'));
  mkdirSync(join(root, '.changeset'));
  mkdirSync(join(root, 'docs'));
  writeFileSync(join(root, 'docs', 'package.json'), JSON.stringify({ name: 'docs', dependencies: { '@chimera/core': '*' } }));
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(root, 'node_modules'), 'dir');
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('scripts/new-workspace.mjs', () => {
  it('writes a package that follows core', () => {
    const run = generate('package', 'sensor-kit', '--description', 'Sensor inputs.');
    expect(run.status, run.stderr).toBe(0);
    const dir = join(root, 'packages', 'sensor-kit');
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const core = JSON.parse(readFileSync(join(REPO_ROOT, 'packages', 'core', 'package.json'), 'utf8'));
    expect(pkg.name).toBe('@chimera/sensor-kit');
    expect(pkg.repository).toEqual({ ...core.repository, directory: 'packages/sensor-kit' });
    expect(pkg.exports).toEqual({ '.': core.exports['.'], './package.json': './package.json' });
    expect(pkg.peerDependencies['@tensorflow/tfjs']).toBe(core.peerDependencies['@tensorflow/tfjs']);
    expect(pkg.peerDependencies['@chimera/core']).not.toBe('*'); // '*' makes every core bump a major here
    for (const file of ['tsup.config.ts', 'vitest.config.ts', 'typedoc.json', 'LICENSE', 'README.md', 'src/index.ts', 'test/sensor-kit.test.ts']) {
      expect(existsSync(join(dir, file)), file).toBe(true);
    }
    expect(readFileSync(join(root, '.changeset', 'sensor-kit-package.md'), 'utf8')).toMatch(/'@chimera\/sensor-kit': minor/);
    expect(JSON.parse(readFileSync(join(root, 'docs', 'package.json'), 'utf8')).dependencies['@chimera/sensor-kit']).toBe('*');
  });

  it('writes a private example', () => {
    const run = generate('example', 'sensor-demo');
    expect(run.status, run.stderr).toBe(0);
    const dir = join(root, 'examples', 'sensor-demo');
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    expect(pkg).toMatchObject({ name: '@chimera-examples/sensor-demo', private: true });
    expect(pkg.dependencies['@chimera/core']).toBe('*');
    expect(existsSync(join(dir, 'test', 'sensor-demo.test.ts'))).toBe(true);
  });

  it('wrote sources that type-check against the built packages', () => {
    expect(typeErrors([join(root, 'packages', 'sensor-kit'), join(root, 'examples', 'sensor-demo')])).toEqual([]);
  });

  it('refuses bad input with the usage and exit code 2', () => {
    for (const args of [['widget', 'x'], ['package', 'Bad_Name'], ['package', 'sensor-kit'], ['package', 'y', '--bogus']]) {
      const run = generate(...args);
      expect(run.status, args.join(' ')).toBe(2);
      expect(run.stderr).toContain('usage: node scripts/new-workspace.mjs');
    }
  });
});
