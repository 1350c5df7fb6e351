#!/usr/bin/env node
// The full fuzz run: every workspace's test/*fuzz*.test.ts with CHIMERA_FUZZ_RUNS at the full count (10,000
// cases a target unless given: `npm run fuzz -- 2000`). CI runs the same files at their reduced counts as part
// of `npm test`. Exits non-zero when any fuzz file fails.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const runs = process.argv[2] ?? '10000';
if (!/^[1-9]\d*$/.test(runs)) {
  console.error(`usage: npm run fuzz [-- CASES]   (CASES a positive integer, default 10000; got ${runs})`);
  process.exit(2);
}
let failed = 0;
for (const group of ['packages', 'examples']) {
  if (!existsSync(join(root, group))) continue;
  for (const name of readdirSync(join(root, group))) {
    const dir = join(root, group, name);
    const testDir = join(dir, 'test');
    if (!existsSync(testDir)) continue;
    const files = readdirSync(testDir).filter((f) => /fuzz.*\.test\.ts$/.test(f)).map((f) => join('test', f));
    if (files.length === 0) continue;
    console.log(`\n== ${group}/${name}: ${files.join(', ')} (${runs} cases a target)`);
    const result = spawnSync('npx', ['vitest', 'run', '--reporter=default', ...files], {
      cwd: dir,
      stdio: 'inherit',
      env: { ...process.env, CHIMERA_FUZZ_RUNS: runs },
    });
    if (result.status !== 0) failed++;
  }
}
console.log(failed ? `\nfuzz: ${failed} workspace(s) failed` : '\nfuzz: every target passed');
process.exit(failed ? 1 : 0);
