/**
 * Backend selection. Library code never changes the backend on import; applications (and tests) call
 * `initBackend()` once. Order of preference: `tensorflow` (native, when @tensorflow/tfjs-node-gpu or -node is
 * installed), then `wasm` (XNNPACK, ~30x faster than cpu on matmul), then `cpu` (pure JS, every kernel).
 */
import * as tf from '@tensorflow/tfjs';
import { installWasmFillIns } from './wasm-fill-ins';
import { installFastPaths, uninstallFastPaths } from './fast-paths';
import { startWasmWithThreads, wasmBackendStarted, wasmThreadCount, WasmThreadsError } from './wasm-threads';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

export interface InitBackendOptions {
  /** Use exactly this backend; fail if it cannot start instead of falling back. */
  backend?: BackendName;
  /** Print the choice and the reasons to stderr (default false). */
  verbose?: boolean;
  /**
   * Install Chimera's fast paths (default true; see fast-paths.ts and FAST_PATHS). false removes any installed
   * earlier and restores tfjs's own kernels and gradients, for A/B benchmarks; a list of ids installs only those.
   */
  fastPaths?: boolean | readonly string[];
  /**
   * Threads for the wasm backend (default 1). 2..8 starts tfjs's threaded XNNPACK build, which Node cannot load
   * on its own (see wasm-threads.ts); the count is fixed once wasm has started in the process.
   */
  threads?: number;
}

export interface BackendReport {
  backend: BackendName;
  /** One line per backend tried, in order: why it was chosen or skipped. */
  reasons: string[];
  /** Kernels installed on this backend by Chimera because the backend lacks them. */
  fillIns: string[];
  /** Ids of the fast paths installed (kernels and gradients replaced by faster exact ones); empty with fastPaths: false. */
  fastPaths: string[];
  /** Threads the backend computes on (wasm's pool size; 1 for cpu). */
  threads: number;
}

const nativePackages = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;

async function tryImport(name: string): Promise<{ ok: true } | { ok: false; error: string }> {
  try {
    await import(name);
    return { ok: true };
  } catch (err) {
    return { ok: false, error: (err as Error).message.split('\n')[0] ?? String(err) };
  }
}

async function tryTensorflow(reasons: string[]): Promise<boolean> {
  for (const pkg of nativePackages) {
    const loaded = await tryImport(pkg);
    if (!loaded.ok) {
      reasons.push(`tensorflow: ${pkg} not available (${loaded.error})`);
      continue;
    }
    if (await tf.setBackend('tensorflow')) {
      reasons.push(`tensorflow: chosen, provided by ${pkg}`);
      return true;
    }
    reasons.push(`tensorflow: ${pkg} loaded but the backend failed to initialise`);
  }
  return false;
}

async function tryWasm(reasons: string[], threads = 1): Promise<boolean> {
  const loaded = await tryImport('@tensorflow/tfjs-backend-wasm');
  if (!loaded.ok) {
    reasons.push(`wasm: @tensorflow/tfjs-backend-wasm not available (${loaded.error})`);
    return false;
  }
  if (threads > 1 && !wasmBackendStarted()) {
    try {
      const running = await startWasmWithThreads(threads);
      reasons.push(`wasm: chosen (XNNPACK on ${running} thread${running === 1 ? '' : 's'})`);
      return true;
    } catch (err) {
      reasons.push(`wasm: ${(err as Error).message}`);
      // A start that got as far as initialising the module cannot be retried single-threaded.
      if (err instanceof WasmThreadsError && err.initialising) return false;
    }
  } else if (threads > 1) {
    reasons.push(`wasm: threads: ${threads} not applied: wasm already started in this process (choose threads in the first initBackend call)`);
  }
  try {
    if (await tf.setBackend('wasm')) {
      const running = await wasmThreadCount();
      reasons.push(running > 1 ? `wasm: chosen (XNNPACK on ${running} threads)` : 'wasm: chosen (single-threaded XNNPACK)');
      return true;
    }
  } catch (err) {
    reasons.push(`wasm: failed to initialise (${(err as Error).message})`);
    return false;
  }
  reasons.push('wasm: failed to initialise');
  return false;
}

async function tryCpu(reasons: string[]): Promise<boolean> {
  if (await tf.setBackend('cpu')) {
    reasons.push('cpu: chosen (pure JS; slow but has every kernel)');
    return true;
  }
  reasons.push('cpu: failed to initialise');
  return false;
}

const starters: Record<BackendName, (reasons: string[], options: InitBackendOptions) => Promise<boolean>> = {
  tensorflow: tryTensorflow,
  wasm: (reasons, options) => tryWasm(reasons, options.threads),
  cpu: tryCpu,
};

/**
 * Picks and starts the fastest available backend (or the forced one), installs the kernels Chimera needs
 * that the backend lacks and the fast paths (unless `fastPaths: false`), and reports what it chose and why.
 */
export async function initBackend(options: InitBackendOptions = {}): Promise<BackendReport> {
  if (options.threads !== undefined && !(Number.isInteger(options.threads) && options.threads >= 1 && options.threads <= 8)) {
    throw new Error(`initBackend: threads must be an integer from 1 to 8 (tfjs's wasm pool has 8 workers), got ${options.threads}`);
  }
  const order: BackendName[] = options.backend ? [options.backend] : ['tensorflow', 'wasm', 'cpu'];
  const reasons: string[] = [];
  for (const name of order) {
    if (await starters[name](reasons, options)) {
      await tf.ready();
      if (options.fastPaths === false) uninstallFastPaths();
      const fillIns = name === 'wasm' ? installWasmFillIns() : [];
      const only = Array.isArray(options.fastPaths) ? options.fastPaths : undefined;
      const fastPaths = options.fastPaths === false ? [] : installFastPaths(name, only);
      const threads = name === 'wasm' ? await wasmThreadCount() : 1;
      const report: BackendReport = { backend: name, reasons, fillIns, fastPaths, threads };
      if (options.verbose) process.stderr.write(`[chimera] backend ${name}\n  ${reasons.join('\n  ')}\n`);
      return report;
    }
  }
  throw new Error(
    `initBackend: could not start backend '${options.backend}'.\n  ${reasons.join('\n  ')}\n` +
      'Install the package it needs, or call initBackend() without `backend` to fall back automatically.',
  );
}

/** The kernels a training step of Chimera's layers needs beyond the forward ops. */
export const TRAINING_KERNELS = ['UnsortedSegmentSum', 'Conv2DBackpropFilter', 'Conv2DBackpropInput'] as const;

/**
 * Fails early, with one message naming every missing kernel and the backend, instead of deep inside a
 * training step.
 */
export function assertKernels(kernelNames: readonly string[], backend: string = tf.getBackend()): void {
  const missing = kernelNames.filter((name) => tf.getKernel(name, backend) === undefined);
  if (missing.length > 0) {
    throw new Error(
      `backend '${backend}' lacks kernel${missing.length > 1 ? 's' : ''} ${missing.join(', ')}. ` +
        "Call initBackend() (it installs Chimera's fill-ins) or use initBackend({ backend: 'cpu' }).",
    );
  }
}
