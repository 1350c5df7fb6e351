// The progress line's width rules: a terminal that reports 0 columns (CI, docker) or none at all is of unknown
// width and gets the whole line; only a known narrow terminal cuts it.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ProgressDisplay } from '../src/training/progress';

const FIELDS = { loss: 0.125, lr: 1e-3, skipped: 2 };

function lineFor(columns: number | undefined): string {
  const stream = { isTTY: true, columns, write: () => true };
  const progress = new ProgressDisplay({ total: 10, stream, env: {}, minIntervalMs: 0, label: 'stage2' });
  return progress.render(5, FIELDS);
}

describe('progress line width', () => {
  // A frozen clock keeps the rate and ETA fields, and so the line's length, the same in every call.
  beforeEach(() => vi.useFakeTimers({ now: 1_000_000 }));
  afterEach(() => vi.useRealTimers());

  it('draws the whole line with its bar when the terminal reports 0 or no columns', () => {
    for (const columns of [0, undefined, Number.NaN]) {
      const line = lineFor(columns);
      expect(line).toMatch(/^\[#{15}-{15}\] stage2 5\/10 \|  50% \| loss 0\.1250 \| lr 1\.00e-3 \| skipped 2 \| .+ \| eta \S+$/);
    }
  });

  it('fits a known width: a shorter bar on a mid-size terminal, the text cut on a narrow one', () => {
    const wide = lineFor(200);
    const full = lineFor(undefined);
    const mid = lineFor(full.length - 10);
    const narrow = lineFor(40);
    expect(wide).toBe(full);
    // The bar shrinks from 30 to 19 cells so the line ends one column short of the edge.
    expect(mid).toHaveLength(full.length - 11);
    expect(mid).toMatch(/^\[#{10}-{9}\] stage2 5\/10/);
    expect(narrow).toHaveLength(39);
    expect(narrow.startsWith('stage2 5/10 |')).toBe(true);
  });
});
