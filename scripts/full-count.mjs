#!/usr/bin/env node
// The full-count runs of the robustness harnesses, which CI runs at reduced counts inside `npm test`:
//   node scripts/full-count.mjs fuzz [CASES]   every test/*fuzz*.test.ts, CHIMERA_FUZZ_RUNS=CASES (default 10000)
//   node scripts/full-count.mjs crash [KILLS]  every test/*crash*.test.ts, CHIMERA_CRASH_KILLS=KILLS (default 50
//                                              random kills per save path, plus a kill at every write point)
// (`npm run fuzz` and `npm run crash` build first.) Exits non-zero when any file fails.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const KINDS = { fuzz: { env: 'CHIMERA_FUZZ_RUNS', count: '10000' }, crash: { env: 'CHIMERA_CRASH_KILLS', count: '50' } };
const [kind, count = KINDS[kind]?.count] = process.argv.slice(2);
if (!KINDS[kind] || !/^[1-9]\d*$/.test(count ?? '')) {
  console.error('usage: node scripts/full-count.mjs fuzz|crash [COUNT]   (COUNT a positive integer)');
  process.exit(2);
}
const root = new URL('..', import.meta.url).pathname;
let failed = 0;
for (const group of ['packages', 'examples']) {
  if (!existsSync(join(root, group))) continue;
  for (const name of readdirSync(join(root, group))) {
    const testDir = join(root, group, name, 'test');
    if (!existsSync(testDir)) continue;
    const files = readdirSync(testDir).filter((f) => f.includes(kind) && f.endsWith('.test.ts')).map((f) => join('test', f));
    if (files.length === 0) continue;
    console.log(`\n== ${group}/${name}: ${files.join(', ')} (${KINDS[kind].env}=${count})`);
    const result = spawnSync('npx', ['vitest', 'run', '--reporter=default', ...files], {
      cwd: join(root, group, name),
      stdio: 'inherit',
      env: { ...process.env, [KINDS[kind].env]: count },
    });
    if (result.status !== 0) failed++;
  }
}
console.log(failed ? `\n${kind}: ${failed} workspace(s) failed` : `\n${kind}: every file passed`);
process.exit(failed ? 1 : 0);
