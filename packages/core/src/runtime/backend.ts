/**
 * Backend selection. Library code never changes the backend on import; applications (and tests) call
 * `initBackend()` once. Order of preference: `tensorflow` (native, when @tensorflow/tfjs-node-gpu or -node is
 * installed), then `wasm` (XNNPACK, ~30x faster than cpu on matmul), then `cpu` (pure JS, every kernel).
 */
import * as tf from '@tensorflow/tfjs';
import { installWasmFillIns } from './wasm-fill-ins';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

export interface InitBackendOptions {
  /** Use exactly this backend; fail if it cannot start instead of falling back. */
  backend?: BackendName;
  /** Print the choice and the reasons to stderr (default false). */
  verbose?: boolean;
}

export interface BackendReport {
  backend: BackendName;
  /** One line per backend tried, in order: why it was chosen or skipped. */
  reasons: string[];
  /** Kernels installed on this backend by Chimera because the backend lacks them. */
  fillIns: string[];
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

async function tryWasm(reasons: string[]): Promise<boolean> {
  const loaded = await tryImport('@tensorflow/tfjs-backend-wasm');
  if (!loaded.ok) {
    reasons.push(`wasm: @tensorflow/tfjs-backend-wasm not available (${loaded.error})`);
    return false;
  }
  try {
    if (await tf.setBackend('wasm')) {
      reasons.push('wasm: chosen (single-threaded XNNPACK)');
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

const starters: Record<BackendName, (reasons: string[]) => Promise<boolean>> = {
  tensorflow: tryTensorflow,
  wasm: tryWasm,
  cpu: tryCpu,
};

/**
 * Picks and starts the fastest available backend (or the forced one), installs the kernels Chimera needs
 * that the backend lacks, and reports what it chose and why.
 */
export async function initBackend(options: InitBackendOptions = {}): Promise<BackendReport> {
  const order: BackendName[] = options.backend ? [options.backend] : ['tensorflow', 'wasm', 'cpu'];
  const reasons: string[] = [];
  for (const name of order) {
    if (await starters[name](reasons)) {
      await tf.ready();
      const fillIns = name === 'wasm' ? installWasmFillIns() : [];
      const report: BackendReport = { backend: name, reasons, fillIns };
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
