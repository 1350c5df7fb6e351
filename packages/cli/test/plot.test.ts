// `chimera plot` on two metrics files the test writes: one PNG per metric, both runs drawn in their colours, and the
// printed summary agrees with the files (sizes, point counts). The chart's own content is core's plotMetrics test.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RUN_COLORS } from '@chimera/core/plot';
import { assertBuilt, runChimera, tempFolder } from './run-cli';

const temp = tempFolder('plot');
beforeAll(assertBuilt);
afterAll(temp.remove);

function writeRun(name: string, steps: number, decay: number): string {
  const lines = Array.from({ length: steps }, (_, i) => JSON.stringify({ step: i + 1, loss: 3 * Math.exp(-(i + 1) / decay) + 0.2, lr: 1e-3, time: i }));
  const path = join(temp.dir, `${name}.jsonl`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

function pixelsOf(png: PNG, hex: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  let count = 0;
  for (let i = 0; i < png.data.length; i += 4) {
    if (Math.abs(png.data[i]! - r!) < 8 && Math.abs(png.data[i + 1]! - g!) < 8 && Math.abs(png.data[i + 2]! - b!) < 8) count++;
  }
  return count;
}

describe('chimera plot', () => {
  it('draws one PNG per metric with every run overlaid', () => {
    const fast = writeRun('fast', 30, 5);
    const slow = writeRun('slow', 45, 20);
    const out = join(temp.dir, 'plots');
    const run = runChimera(['plot', fast, slow, '--name', 'fast', '--name', 'slow', '--metric', 'loss', '--log', 'loss', '--out', out], temp.dir);
    expect(run.status, run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const [, path, width, height] = /^(\S+)  (\d+)x(\d+)  loss: fast 30 points, slow 45 points$/.exec(lines[0]!) ?? [];
    expect(path).toBe(join(out, 'loss.png'));
    const png = PNG.sync.read(readFileSync(path!));
    expect([png.width, png.height]).toEqual([Number(width), Number(height)]);
    // Both runs' lines are drawn (each run has its own colour), not a blank canvas.
    expect(pixelsOf(png, RUN_COLORS[0])).toBeGreaterThan(100);
    expect(pixelsOf(png, RUN_COLORS[1])).toBeGreaterThan(100);
  });

  it('names the missing metric and needs --out', () => {
    const file = writeRun('short', 3, 2);
    const missing = runChimera(['plot', file, '--metric', 'accuracy', '--out', join(temp.dir, 'none')], temp.dir);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^chimera plot: plotMetrics: no run has finite values of 'accuracy'/);
    const noOut = runChimera(['plot', file], temp.dir);
    expect(noOut.status).toBe(2);
    expect(noOut.stderr).toMatch(/^chimera plot: --out DIR is required/);
  });
});
