// plotMetrics draws the Trainer's JSONL into PNGs: the files are opened again and the curves found by colour, so
// a chart that is blank, cropped, mis-scaled or mislabelled as to runs fails.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plotMetrics, RUN_COLORS, type PlotMetricsResult } from '../src/plot/index';
import { MetricsLog, type StepMetrics } from '../src/training/metrics';

const dir = mkdtempSync(join(tmpdir(), 'chimera-plot-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Run A: 100 steps, loss peaks (3.0) at step 10 and bottoms out (0.5) at step 70. Run B: 50 steps, loss 2.0 at
// most, one non-finite step logged as null. Both written by the Trainer's own MetricsLog.
const lossA = (step: number) => (step <= 10 ? 2 + step / 10 : step <= 70 ? 3 - (2.5 * (step - 10)) / 60 : 0.5 + (step - 70) / 100);
const lossB = (step: number) => 2 - step / 50;

function writeRun(path: string, steps: number, loss: (step: number) => number | null, lr: (step: number) => number): void {
  const log = new MetricsLog(path);
  for (let step = 0; step < steps; step++) {
    const metrics: StepMetrics = { step, loss: loss(step), lr: lr(step), gradNorm: 1 + step / 100, skipped: false, skippedTotal: 0, time: 0.01, timestamp: 1e12 + step };
    log.write(metrics);
  }
}

interface Pixels {
  png: PNG;
  at(x: number, y: number): [number, number, number];
}

function openPng(path: string): Pixels {
  const png = PNG.sync.read(readFileSync(path));
  return { png, at: (x, y) => [png.data[(y * png.width + x) * 4]!, png.data[(y * png.width + x) * 4 + 1]!, png.data[(y * png.width + x) * 4 + 2]!] };
}

function near(rgb: readonly number[], hex: string, tolerance: number): boolean {
  const target = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return rgb.reduce((sum, v, i) => sum + Math.abs(v - target[i]!), 0) <= tolerance;
}

/** The plot area's frame: Vega strokes it in #888; its sides are the outermost grey columns longer than 40% of the image. */
function frameOf(image: Pixels): { left: number; right: number; top: number; bottom: number } {
  const { width, height } = image.png;
  const grey = (x: number, y: number) => near(image.at(x, y), '#888888', 30);
  const count = (n: number, f: (i: number) => boolean) => Array.from({ length: n }, (_, i) => i).filter(f).length;
  const columns = Array.from({ length: width }, (_, x) => x).filter((x) => count(height, (y) => grey(x, y)) > 0.4 * height);
  const right = columns.at(-1)!;
  // Top and bottom from the right edge: a gridline can be drawn over the top edge.
  const rows = Array.from({ length: height }, (_, y) => y).filter((y) => grey(right, y));
  return { left: columns[0]!, right, top: rows[0]!, bottom: rows.at(-1)! };
}

/** Pixels of one run's line inside the frame (the legend's swatch lies outside it). */
function curve(image: Pixels, color: string, frame: ReturnType<typeof frameOf>): { x: number; y: number }[] {
  const points: { x: number; y: number }[] = [];
  for (let y = frame.top - 3; y <= frame.bottom + 3; y++) {
    for (let x = frame.left - 3; x <= frame.right + 3; x++) if (near(image.at(x, y), color, 40)) points.push({ x, y });
  }
  return points;
}

describe('plotMetrics', () => {
  let result: PlotMetricsResult;
  const runA = join(dir, 'a', 'metrics.jsonl');
  const runB = join(dir, 'b', 'metrics.jsonl');
  const evalA = join(dir, 'a', 'eval.jsonl');

  beforeAll(async () => {
    writeRun(runA, 100, lossA, (step) => 1e-3 * Math.min(1, (step + 1) / 10));
    writeRun(runB, 50, (step) => (step === 20 ? null : lossB(step)), () => 2e-3);
    writeFileSync(evalA, [0, 25, 50, 75, 99].map((step) => `${JSON.stringify({ step, seconds: 1, accuracy: step / 100 })}\n`).join(''));
    result = await plotMetrics([{ name: 'run A', path: runA }, { name: 'run B', path: runB }, { name: 'run A eval', path: evalA }], { outDir: join(dir, 'plots') });
  });

  it('writes one chart per metric: loss and lr first, then the eval metric and gradient norm', () => {
    expect(result.charts.map((c) => c.metric)).toEqual(['loss', 'lr', 'accuracy', 'gradNorm']);
    expect(result.charts.map((c) => c.path)).toEqual(['loss', 'lr', 'accuracy', 'gradNorm'].map((m) => join(dir, 'plots', `${m}.png`)));
    const accuracy = result.charts.find((c) => c.metric === 'accuracy')!;
    expect(accuracy.runs.map((r) => r.name)).toEqual(['run A eval']);
    const loss = result.charts[0]!;
    expect(loss.runs.map((r) => [r.name, r.points, r.steps])).toEqual([['run A', 100, [0, 99]], ['run B', 49, [0, 49]]]);
  });

  it('draws a chart of the reported size that is not blank', () => {
    for (const chart of result.charts) {
      const image = openPng(chart.path);
      expect([image.png.width, image.png.height]).toEqual([chart.width, chart.height]);
      expect(chart.width).toBeGreaterThan(1000);
      expect(chart.height).toBeGreaterThan(600);
      let inked = 0;
      for (let i = 0; i < image.png.data.length; i += 4) if (image.png.data[i]! < 200 || image.png.data[i + 1]! < 200 || image.png.data[i + 2]! < 200) inked++;
      // Axes, labels, gridlines and lines: a few percent of the pixels, not none and not a filled image.
      expect(inked / (chart.width * chart.height)).toBeGreaterThan(0.01);
      expect(inked / (chart.width * chart.height)).toBeLessThan(0.5);
    }
  });

  it("places each run's curve where its data lies: x span, the peak, the minimum and a shorter run's end", () => {
    const image = openPng(result.charts[0]!.path);
    const frame = frameOf(image);
    const a = curve(image, RUN_COLORS[0], frame);
    const b = curve(image, RUN_COLORS[1], frame);
    expect(a.length).toBeGreaterThan(500);
    expect(b.length).toBeGreaterThan(200);
    const xs = a.map((p) => p.x);
    const ys = a.map((p) => p.y);
    // Run A covers every step: its line spans the frame from edge to edge.
    expect(Math.abs(Math.min(...xs) - frame.left)).toBeLessThanOrEqual(4);
    expect(Math.abs(Math.max(...xs) - frame.right)).toBeLessThanOrEqual(4);
    const stepAt = (x: number) => ((x - frame.left) / (frame.right - frame.left)) * 99;
    const valueAt = (y: number) => 3 - ((y - frame.top) / (frame.bottom - frame.top)) * 2.5;
    // Its peak (3.0 at step 10) touches the top and its minimum (0.5 at step 70) the bottom of the frame.
    const top = a.find((p) => p.y === Math.min(...ys))!;
    const bottom = a.find((p) => p.y === Math.max(...ys))!;
    expect(Math.abs(top.y - frame.top)).toBeLessThanOrEqual(4);
    expect(Math.abs(bottom.y - frame.bottom)).toBeLessThanOrEqual(4);
    expect(stepAt(top.x)).toBeCloseTo(10, -0.5);
    expect(stepAt(bottom.x)).toBeCloseTo(70, -0.5);
    // Run B (steps 0..49, from 2.0 down to 1.02) ends half way across, and its highest point is at 2.0.
    const bEnd = Math.max(...b.map((p) => p.x));
    expect(stepAt(bEnd)).toBeCloseTo(49, -0.5);
    expect(valueAt(Math.min(...b.map((p) => p.y)))).toBeCloseTo(2, 1);
    expect(valueAt(Math.max(...b.map((p) => p.y)))).toBeCloseTo(lossB(49), 1);
  });

  it('says which metrics the runs have when asked for one they lack, and checks the records', async () => {
    await expect(plotMetrics(runA, { outDir: join(dir, 'none'), metrics: ['bleu'] })).rejects.toThrow(/no run has finite values of 'bleu'.*loss, lr, gradNorm/);
    await expect(plotMetrics({ records: [{ loss: 1 }] }, { outDir: join(dir, 'none') })).rejects.toThrow(/record 1 has no numeric 'step'/);
    await expect(plotMetrics([runA, runA], { outDir: join(dir, 'none') })).rejects.toThrow(/two runs are named 'a\/metrics'/);
  });
});
