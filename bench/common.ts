/**
 * Shared pieces of the benchmarks: argument parsing, timing, the 2-D matmul ceiling, PyTorch reference runs,
 * markdown tables and the results JSON.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf } from '@chimera/core';
import { findTorchPython } from '@chimera/core/testing';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));

export function flag(name: string): boolean {
  return process.argv.includes(`--${name}`);
}

export function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** Milliseconds of each of `reps` runs of fn (after `warmup` runs), sorted. */
export function timeRuns(fn: () => void, reps: number, warmup = 1): number[] {
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const start = performance.now();
    fn();
    times.push(performance.now() - start);
  }
  return times.sort((a, b) => a - b);
}

export const median = (sorted: number[]) => sorted[Math.floor(sorted.length / 2)]!;

/**
 * Wall and CPU milliseconds of one run of fn. On a shared machine wall time includes waiting for a core; the
 * process's CPU time (all its threads) does not, so for single-threaded work it approximates a quiet machine's
 * wall time.
 */
export function timeWallAndCpu(fn: () => void): { wallMs: number; cpuMs: number } {
  const cpu = process.cpuUsage();
  const start = performance.now();
  fn();
  const wallMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return { wallMs, cpuMs: (used.user + used.system) / 1000 };
}

/**
 * GFLOP/s of a plain 2-D matmul [m, k] @ [k, n] on the current backend: the best of several runs, with a fresh
 * right-hand operand each time (as in training, where weights change every step), the copy subtracted.
 */
export function matmulRate(m: number, k: number, n: number, reps = 8): number {
  return matmulRates(m, k, n, reps).wall;
}

/** matmulRate by wall time and by CPU time (best of `reps` each). */
export function matmulRates(m: number, k: number, n: number, reps = 8): { wall: number; cpu: number } {
  const a = tf.randomNormal([m, k]);
  const b = tf.randomNormal([k, n]);
  const best = (fn: () => void) => {
    fn();
    const runs = Array.from({ length: reps }, () => timeWallAndCpu(fn));
    return { wall: Math.min(...runs.map((r) => r.wallMs)), cpu: Math.min(...runs.map((r) => r.cpuMs)) };
  };
  const withCopy = best(() => tf.dispose(tf.tidy(() => tf.matMul(a, tf.add(b, 0)))));
  const copyOnly = best(() => tf.dispose(tf.add(b, 0)));
  tf.dispose([a, b]);
  const flops = 2 * m * k * n;
  return {
    wall: flops / Math.max(withCopy.wall - copyOnly.wall, 1e-3) / 1e6,
    cpu: flops / Math.max(withCopy.cpu - copyOnly.cpu, 1e-3) / 1e6,
  };
}

/** The shapes of the reference LLM's matmuls at width 256 (projections, MLP, their gradients) and a square. */
export const CEILING_SHAPES: [number, number, number][] = [
  [1024, 256, 256],
  [1024, 256, 688],
  [1024, 688, 256],
  [256, 1024, 688],
  [512, 512, 512],
];

/** The backend's 2-D matmul ceiling: the best rate over CEILING_SHAPES (GFLOP/s), by wall and by CPU time. */
export function matmulCeiling(): { gflops: number; cpuGflops: number; byShape: Record<string, number> } {
  const byShape: Record<string, number> = {};
  let cpuGflops = 0;
  for (const [m, k, n] of CEILING_SHAPES) {
    const rates = matmulRates(m, k, n, 5);
    byShape[`${m}x${k}x${n}`] = rates.wall;
    cpuGflops = Math.max(cpuGflops, rates.cpu);
  }
  return { gflops: Math.max(...Object.values(byShape)), cpuGflops, byShape };
}

export interface TorchRun {
  label: string;
  env: Record<string, string>;
}

/**
 * How PyTorch is run: with the environment as given. OpenBLAS picks its kernels by detecting the CPU; where it
 * misdetects one, OPENBLAS_CORETYPE (e.g. Haswell) set by the caller is passed through and shown in the tables.
 */
export function torchRuns(): TorchRun[] {
  return [{ label: process.env.OPENBLAS_CORETYPE ? `OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE}` : 'default', env: {} }];
}

export const TORCH_MISSING =
  'PyTorch comparison skipped: no python with torch. On Debian/Ubuntu: sudo apt-get install python3-torch ' +
  'libopenblas0-pthread (without libopenblas0-pthread torch falls back to reference BLAS, ~3 GFLOP/s).';

/**
 * Runs a bench/torch script with a python that has torch; returns its JSON output, or null without torch.
 * `--threads N` also caps OpenBLAS's own pool: torch.set_num_threads does not reach it, and a "1 thread" run
 * otherwise multiplies on both cores of an idle machine (measured: 124 vs 88 GFLOP/s at 512^3, CPU = 2x wall).
 */
export function runTorch<T>(script: string, args: (string | number)[], env: Record<string, string> = {}): T | null {
  const python = findTorchPython();
  if (!python) return null;
  const threadsAt = args.indexOf('--threads');
  const threads = threadsAt >= 0 ? String(args[threadsAt + 1]) : undefined;
  const threadCaps: Record<string, string> = threads ? { OPENBLAS_NUM_THREADS: threads, OMP_NUM_THREADS: threads } : {};
  const out = execFileSync(python, [join(BENCH_DIR, 'torch', script), ...args.map(String)], {
    encoding: 'utf8',
    env: { ...process.env, ...threadCaps, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1 << 24,
  });
  return JSON.parse(out.trim().split('\n').at(-1)!) as T;
}

export function markdownTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

export const fixed = (v: number | null | undefined, digits = 1) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits));

/** Writes bench/results/<name>.json and returns its path. */
export function writeResults(name: string, results: Record<string, unknown>): string {
  const out = join(BENCH_DIR, 'results', `${name}.json`);
  mkdirSync(dirname(out), { recursive: true });
  const backend = tf.engine().backendName ?? null; // null when the benchmark never started tfjs
  const payload = { benchmark: name, date: new Date().toISOString(), node: process.version, backend, ...results };
  writeFileSync(out, `${JSON.stringify(payload, null, 2)}\n`);
  return out;
}
