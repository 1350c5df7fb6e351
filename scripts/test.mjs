#!/usr/bin/env node
// Runs every package's tests through turbo, then prints one closing line summed over all packages
// ("N passed, N failed, N skipped"). Exits non-zero when turbo fails or any test failed.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const workspaces = ['packages', 'examples', 'tools']
  .filter((dir) => existsSync(join(root, dir)))
  .flatMap((dir) => readdirSync(join(root, dir)).map((name) => join(root, dir, name)))
  .concat([join(root, 'docs')]) // the docs workspace: every snippet in the Markdown, run against the built packages
  .filter((dir) => existsSync(join(dir, 'package.json')));
const resultFile = (dir) => join(dir, '.test-results', 'vitest.json');

for (const dir of workspaces) rmSync(join(dir, '.test-results'), { recursive: true, force: true });

// --continue: one failing package must not hide the results of the others (the exit code still fails).
const turbo = spawnSync('npx', ['turbo', 'run', 'test', '--concurrency=1', '--continue', ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
});

let passed = 0;
let failed = 0;
let skipped = 0;
const missing = [];
for (const dir of workspaces) {
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  if (!pkg.scripts?.test) continue;
  if (!existsSync(resultFile(dir))) {
    missing.push(pkg.name);
    continue;
  }
  const results = JSON.parse(readFileSync(resultFile(dir), 'utf8'));
  passed += results.numPassedTests;
  failed += results.numFailedTests;
  skipped += results.numPendingTests + (results.numTodoTests ?? 0);
}
if (missing.length) console.log(`no test results from: ${missing.join(', ')}`);
console.log(`\nTests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(turbo.status !== 0 || failed > 0 || missing.length > 0 ? 1 : 0);
