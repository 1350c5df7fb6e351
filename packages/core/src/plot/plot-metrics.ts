/**
 * Charts of training metrics as PNG files: one chart per metric (loss, learning rate, gradient norm, eval
 * accuracy, ...), every run that has the metric overlaid as its own line, with axes, titles and a legend.
 *
 * Drawing is Vega-Lite compiled to Vega, rendered headless to SVG, then rasterised by resvg (`@resvg/resvg-js`,
 * whose platform binaries are npm packages, so nothing downloads outside the registry). This module reads and
 * writes files and loads a native renderer, so it is the `@chimera/core/plot` entry, never imported by the main
 * entry: a browser bundle of `@chimera/core` does not pull it in.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { readMetrics } from '../training/metrics';

/** One line per chart: a JSONL file (the Trainer's `metricsPath`, or any file of `{ step, ...numbers }` lines) or its records. */
export interface MetricsRun {
  /** The legend's name for this run (default: the file's folder and name, e.g. `seed1/metrics`). */
  name?: string;
  /** A JSONL metrics file; lines need a numeric `step`. */
  path?: string;
  /** Records instead of a file (exactly one of `path` and `records`). */
  records?: readonly Record<string, unknown>[];
}

/** Options of {@link plotMetrics}: where the PNGs go, which metrics, and the chart size. */
export interface PlotMetricsOptions {
  /** Folder the PNGs are written to (made if missing). */
  outDir: string;
  /**
   * Metrics to chart, one PNG each. Default: every numeric field any run has, except bookkeeping ones
   * (`step`, `time`, `timestamp`, `seconds`, `skipped`, `skippedTotal`), loss and lr first.
   */
  metrics?: readonly string[];
  /** Prepended to each file name: `<prefix><metric>.png` (default ''). */
  prefix?: string;
  /** Plot area size in pixels before `scale` (default 560 x 300; axes, titles and legend add to it). */
  width?: number;
  /** Plot area height in pixels before `scale` (default 300). */
  height?: number;
  /** Pixel density of the PNG (default 2: sharp on high-DPI screens). */
  scale?: number;
  /** Metrics drawn on a log y axis (default: none). Non-positive values are dropped from those charts. */
  logScale?: readonly string[];
  /** Extra TTF/OTF files for the labels (system fonts are always searched; without any font, text is not drawn). */
  fontFiles?: readonly string[];
}

/** One written chart. */
export interface MetricsChart {
  /** The metric drawn (a field of the metrics lines, e.g. `loss`). */
  metric: string;
  /** The PNG's path. */
  path: string;
  /** Width and height of the PNG in pixels. */
  width: number;
  /** Height of the PNG in pixels. */
  height: number;
  /** The runs drawn, with their point counts and the data's extent (what the curve spans). */
  runs: { name: string; points: number; steps: [number, number]; values: [number, number] }[];
}

/** What {@link plotMetrics} wrote: one chart per metric. */
export interface PlotMetricsResult {
  /** The charts, in drawing order. */
  charts: MetricsChart[];
}

/** Numeric fields that describe the step rather than the model. */
const BOOKKEEPING_FIELDS = new Set(['step', 'time', 'timestamp', 'seconds', 'skipped', 'skippedTotal']);
const FIRST_METRICS = ['loss', 'lr'];
/** Vega's category10 colours; run i of a call always gets colour i, in every chart. */
export const RUN_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'] as const;
const TITLES: Record<string, string> = { loss: 'loss', lr: 'learning rate', gradNorm: 'gradient norm (before clipping)', accuracy: 'accuracy' };

interface Point {
  step: number;
  value: number;
  run: string;
}

/**
 * Writes one PNG chart per metric into `options.outDir`, every run that has the metric overlaid. Points whose
 * value is null or not finite (the Trainer logs a non-finite loss as null) are left out of the line.
 *
 * ```ts
 * import { plotMetrics } from '@chimera/core/plot';
 * await plotMetrics([{ name: 'seed 1', path: 'runs/seed1/metrics.jsonl' }, { name: 'seed 2', path: 'runs/seed2/metrics.jsonl' }], { outDir: 'runs/plots' });
 * ```
 */
export async function plotMetrics(runs: string | MetricsRun | readonly (string | MetricsRun)[], options: PlotMetricsOptions): Promise<PlotMetricsResult> {
  const loaded = loadRuns(Array.isArray(runs) ? runs : [runs as string | MetricsRun]);
  const metrics = options.metrics ?? defaultMetrics(loaded);
  const logScale = new Set(options.logScale ?? []);
  const charts: MetricsChart[] = [];
  mkdirSync(options.outDir, { recursive: true });
  for (const metric of metrics) {
    const points: Point[] = [];
    for (const run of loaded) {
      for (const record of run.records) {
        const value = record[metric];
        if (typeof value !== 'number' || !Number.isFinite(value) || (logScale.has(metric) && value <= 0)) continue;
        points.push({ step: record.step as number, value, run: run.name });
      }
    }
    if (points.length === 0) {
      const found = loaded.map((r) => `${r.name}: ${fieldsOf(r.records).join(', ') || 'no numeric fields'}`).join('; ');
      throw new Error(`plotMetrics: no run has finite values of '${metric}' to chart (${found}); pass metrics that the files have`);
    }
    const png = await renderChart(metric, points, loaded.map((r) => r.name), logScale.has(metric), options);
    const path = join(options.outDir, `${options.prefix ?? ''}${fileSafe(metric)}.png`);
    writeFileSync(path, png.bytes);
    charts.push({ metric, path, width: png.width, height: png.height, runs: extents(points, loaded.map((r) => r.name)) });
  }
  return { charts };
}

interface LoadedRun {
  name: string;
  records: Record<string, unknown>[];
}

function loadRuns(runs: readonly (string | MetricsRun)[]): LoadedRun[] {
  if (runs.length === 0) throw new Error('plotMetrics: expected at least one run (a JSONL path or { path | records }), got none');
  const loaded = runs.map((given, i): LoadedRun => {
    const run: MetricsRun = typeof given === 'string' ? { path: given } : given;
    if ((run.path === undefined) === (run.records === undefined)) {
      throw new Error(`plotMetrics: run ${i} needs exactly one of path and records, got ${run.path === undefined ? 'neither' : 'both'}`);
    }
    const records = run.path !== undefined ? (readMetrics(run.path) as unknown as Record<string, unknown>[]) : [...run.records!];
    const bad = records.findIndex((r) => typeof r.step !== 'number' || !Number.isFinite(r.step));
    if (bad >= 0) {
      throw new Error(`plotMetrics: ${run.path ?? `run ${i}`} record ${bad + 1} has no numeric 'step' (got ${JSON.stringify(records[bad]).slice(0, 80)}); each line must be { "step": n, ... }`);
    }
    return { name: run.name ?? (run.path !== undefined ? defaultName(run.path) : `run ${i + 1}`), records };
  });
  const names = loaded.map((r) => r.name);
  const repeated = names.find((n, i) => names.indexOf(n) !== i);
  if (repeated !== undefined) throw new Error(`plotMetrics: two runs are named '${repeated}'; give each run a distinct name so the legend tells them apart`);
  return loaded;
}

/** `runs/seed1/metrics.jsonl` -> `seed1/metrics`: the folder usually says which run it is. */
function defaultName(path: string): string {
  return `${basename(dirname(path))}/${basename(path).replace(/\.jsonl?$/, '')}`;
}

function fieldsOf(records: readonly Record<string, unknown>[]): string[] {
  const fields = new Set<string>();
  for (const record of records) for (const [key, value] of Object.entries(record)) if (typeof value === 'number' && !BOOKKEEPING_FIELDS.has(key)) fields.add(key);
  return [...fields];
}

function defaultMetrics(runs: readonly LoadedRun[]): string[] {
  const fields = new Set(runs.flatMap((r) => fieldsOf(r.records)));
  return [...FIRST_METRICS.filter((f) => fields.has(f)), ...[...fields].filter((f) => !FIRST_METRICS.includes(f)).sort()];
}

function fileSafe(metric: string): string {
  return metric.replace(/[^A-Za-z0-9._-]+/g, '_');
}

function extents(points: readonly Point[], names: readonly string[]): MetricsChart['runs'] {
  return names.flatMap((name) => {
    const mine = points.filter((p) => p.run === name);
    if (mine.length === 0) return [];
    const steps = mine.map((p) => p.step);
    const values = mine.map((p) => p.value);
    return [{ name, points: mine.length, steps: [Math.min(...steps), Math.max(...steps)] as [number, number], values: [Math.min(...values), Math.max(...values)] as [number, number] }];
  });
}

async function renderChart(
  metric: string,
  points: readonly Point[],
  runNames: readonly string[],
  log: boolean,
  options: PlotMetricsOptions,
): Promise<{ bytes: Buffer; width: number; height: number }> {
  // vega and vega-lite are ESM-only; import() loads them from the CJS build too.
  const [vega, vegaLite, { Resvg }] = await Promise.all([import('vega'), import('vega-lite'), import('@resvg/resvg-js')]);
  const drawn = runNames.filter((name) => points.some((p) => p.run === name));
  const spec = {
    width: options.width ?? 560,
    height: options.height ?? 300,
    background: 'white',
    title: TITLES[metric] ?? metric,
    data: { values: points },
    mark: { type: 'line', strokeWidth: 1.5, clip: true },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step', scale: { nice: false, zero: false } },
      y: { field: 'value', type: 'quantitative', title: metric, scale: log ? { type: 'log', nice: false } : { zero: false, nice: false } },
      // The legend lists the runs that have this metric; each keeps its colour from the call's run order.
      color: { field: 'run', type: 'nominal', title: 'run', scale: { domain: drawn, range: drawn.map((name) => RUN_COLORS[runNames.indexOf(name) % RUN_COLORS.length]) } },
    },
    config: { font: 'DejaVu Sans, Liberation Sans, Arial, sans-serif', view: { stroke: '#888' } },
  };
  const compiled = vegaLite.compile(spec as Parameters<typeof vegaLite.compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    const rendered = new Resvg(svg, {
      fitTo: { mode: 'zoom', value: options.scale ?? 2 },
      font: { loadSystemFonts: true, fontFiles: [...(options.fontFiles ?? [])], defaultFontFamily: 'DejaVu Sans' },
    }).render();
    return { bytes: rendered.asPng(), width: rendered.width, height: rendered.height };
  } finally {
    view.finalize();
  }
}
