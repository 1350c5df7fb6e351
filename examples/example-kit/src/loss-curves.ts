/**
 * The loss curve PNG every example writes next to its metrics: core's plotMetrics over the run's JSONL files
 * (one line per training stage, plus held-out evaluations when they record a loss).
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { plotMetrics, type MetricsRun } from '@chimera/core/plot';

/**
 * Writes `<dir>/loss.png` from the given JSONL files (named runs; missing or empty files, such as a stage run
 * for 0 steps, are left out) and returns its path, or null when no file had a loss to draw. A drawing failure
 * is reported through `log` and not thrown: the run's results are already written and stay valid.
 */
export async function writeLossCurve(dir: string, runs: readonly { name: string; path: string }[], log: (line: string) => void = console.log): Promise<string | null> {
  const present: MetricsRun[] = runs.filter((r) => existsSync(r.path) && statSync(r.path).size > 0);
  if (present.length === 0) return null;
  try {
    const { charts } = await plotMetrics(present, { outDir: dir, metrics: ['loss'] });
    return charts[0]?.path ?? join(dir, 'loss.png');
  } catch (error) {
    log(`loss curve not drawn: ${(error as Error).message}`);
    return null;
  }
}
