/**
 * Fuzz budgets. CI runs every fuzz target at a reduced count; `npm run fuzz` sets CHIMERA_FUZZ_RUNS to the full
 * count (10,000 cases a target) and runs only the fuzz files (scripts/full-count.mjs). A fuzz test asks for its count here and sizes its
 * timeout from it, so the same file serves both.
 */

/** Cases per target in the full run (`npm run fuzz`). */
export const FULL_FUZZ_RUNS = 10_000;

/** Cases a fuzz target runs: CHIMERA_FUZZ_RUNS when set (a positive integer), else `reduced` (CI's count). */
export function fuzzRuns(reduced: number): number {
  const raw = process.env.CHIMERA_FUZZ_RUNS;
  if (raw === undefined || raw === '') return reduced;
  const runs = Number(raw);
  if (!(Number.isInteger(runs) && runs > 0)) {
    throw new Error(`CHIMERA_FUZZ_RUNS must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return runs;
}

/** A vitest timeout for `runs` cases of at most `msPerCase` each, plus setup, never below `floorMs`. */
export function fuzzTimeout(runs: number, msPerCase: number, floorMs = 180_000): number {
  return Math.max(floorMs, runs * msPerCase + 60_000);
}
