/**
 * Backend selection. Library code never changes the backend on import; applications (and tests) call
 * `initBackend()` once. Order of preference: `tensorflow` (native, when @tensorflow/tfjs-node-gpu or -node is
 * installed), then `wasm` (XNNPACK, ~30x faster than cpu on matmul), then `cpu` (pure JS, every kernel).
 */
import * as tf from '@tensorflow/tfjs';
import { installWasmFillIns } from './wasm-fill-ins';
import { installFastPaths, uninstallFastPaths } from './fast-paths';
import { startWasmWithThreads, threadedBuildSupport, wasmBackendStarted, wasmThreadCount, WasmThreadsError } from './wasm-threads';
import { cpuSnapshot, usableCores } from './core-capacity';
import { describeThreadPolicy, installThreadPolicy, threadPolicyStatus } from './thread-policy';
import { withoutAddedProcessHandlers } from './process-handlers';

/** The TensorFlow.js backends Chimera can start: tfjs-node ('tensorflow'), 'wasm' or 'cpu'. */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

/** Options of {@link initBackend}. */
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
   * Threads for the wasm backend. 'auto' (the default) starts tfjs's threaded XNNPACK build, which Node cannot load
   * on its own (see wasm-threads.ts), with a pool as large as the cores this process may use (at most 8), and runs
   * large matmuls, convolutions, Sigmoid and Softmax on the cores other processes leave free, re-checked while it
   * runs (thread-policy.ts); with one core, or where the threaded build cannot be controlled, it is 1. 1 is the
   * single-threaded build; 2..8 is a pool of that size used by every large operation whatever else runs. The
   * numbers are the same bits on any thread count. Chosen once per process, when wasm first starts.
   */
  threads?: number | 'auto';
}

/** What {@link initBackend} started, and why. */
export interface BackendReport {
  /** The backend now active. */
  backend: BackendName;
  /** One line per backend tried, in order: why it was chosen or skipped. */
  reasons: string[];
  /** Kernels installed on this backend by Chimera because the backend lacks them. */
  fillIns: string[];
  /** Ids of the fast paths installed (kernels and gradients replaced by faster exact ones); empty with fastPaths: false. */
  fastPaths: string[];
  /** Threads the backend computes on at most (wasm's pool size; 1 for cpu). */
  threads: number;
  /**
   * How wasm uses its threads: 'single' (one thread), 'fixed' (large operations on the whole pool) or 'adaptive'
   * (large operations on the cores other processes leave free; threadPolicyStatus() says how many now).
   */
  threadMode: 'single' | 'fixed' | 'adaptive';
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

/** The reasons line of a running threaded backend, or null when wasm runs single-threaded. */
function threadedLine(): string | null {
  const status = threadPolicyStatus();
  return status ? `wasm: chosen (XNNPACK; ${describeThreadPolicy(status)})` : null;
}

async function tryWasm(reasons: string[], threads: number | 'auto' = 'auto'): Promise<boolean> {
  const loaded = await tryImport('@tensorflow/tfjs-backend-wasm');
  if (!loaded.ok) {
    reasons.push(`wasm: @tensorflow/tfjs-backend-wasm not available (${loaded.error})`);
    return false;
  }
  let poolSize = threads === 'auto' ? Math.min(usableCores(), 8) : threads;
  if (!wasmBackendStarted() && poolSize > 1 && threads === 'auto') {
    const support = await threadedBuildSupport();
    if (!support.ok) {
      reasons.push(`wasm: threads: 1, not ${poolSize}: ${support.reason}`);
      poolSize = 1;
    }
  } else if (!wasmBackendStarted() && threads === 'auto') {
    reasons.push('wasm: threads: 1 (this process may use 1 core)');
  }
  if (poolSize > 1 && !wasmBackendStarted()) {
    try {
      const before = cpuSnapshot();
      const started = await startWasmWithThreads(poolSize);
      if (started.pool) {
        installThreadPolicy(started.pool, threads === 'auto' ? 'adaptive' : 'fixed', started.spinPatched, before);
        reasons.push(threadedLine()!);
      } else {
        reasons.push(
          `wasm: chosen (XNNPACK on ${started.threads} threads for every operation: the pool's thread count could not be located in this binary, ` +
            'so it cannot follow the load; initBackend({ threads: 1 }) on a shared machine)',
        );
      }
      return true;
    } catch (err) {
      reasons.push(`wasm: ${(err as Error).message}`);
      // A start that got as far as initialising the module cannot be retried single-threaded.
      if (err instanceof WasmThreadsError && err.initialising) return false;
    }
  } else if (threads !== 'auto' && wasmBackendStarted()) {
    const status = threadPolicyStatus();
    const running = status ? `a pool of ${status.poolSize}, ${status.mode}` : 'one thread';
    const same = status ? status.mode === 'fixed' && status.poolSize === threads : threads === 1;
    if (!same) reasons.push(`wasm: threads: ${threads} not applied: wasm already started in this process with ${running} (choose threads in the first initBackend call)`);
  }
  try {
    if (await tf.setBackend('wasm')) {
      const running = await wasmThreadCount();
      reasons.push(threadedLine() ?? (running > 1 ? `wasm: chosen (XNNPACK on ${running} threads)` : 'wasm: chosen (single-threaded XNNPACK)'));
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
  // The wasm glue's process handlers would turn every later uncaught error into exit code 7 (process-handlers.ts).
  wasm: (reasons, options) => withoutAddedProcessHandlers(() => tryWasm(reasons, options.threads)),
  cpu: tryCpu,
};

/**
 * Picks and starts the fastest available backend (or the forced one), installs the kernels Chimera needs
 * that the backend lacks and the fast paths (unless `fastPaths: false`), and reports what it chose and why.
 */
export async function initBackend(options: InitBackendOptions = {}): Promise<BackendReport> {
  const threads = options.threads;
  if (threads !== undefined && threads !== 'auto' && !(Number.isInteger(threads) && threads >= 1 && threads <= 8)) {
    throw new Error(`initBackend: threads must be 'auto' or an integer from 1 to 8 (tfjs's wasm pool has 8 workers), got ${String(threads)}`);
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
      const running = name === 'wasm' ? await wasmThreadCount() : 1;
      const policy = name === 'wasm' ? threadPolicyStatus() : null;
      const threadMode = policy ? policy.mode : running > 1 ? 'fixed' : 'single';
      const report: BackendReport = { backend: name, reasons, fillIns, fastPaths, threads: running, threadMode };
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
