/**
 * Fast paths: kernel and gradient replacements that compute what tfjs computes (bit-for-bit or to float32
 * rounding) but avoid its slow paths on the backends Chimera runs on. initBackend() installs them;
 * initBackend({ fastPaths: false }) removes them again and restores tfjs's own kernels, for A/B measurements.
 */
import * as tf from '@tensorflow/tfjs';
import { makeSlicedBatchMatMul, wasmBackendSupportsSlicedMatMul } from './batch-matmul';
import { batchMatMulGradient } from './matmul-gradient';
import { segmentSumCpuKernel, segmentSumWasmKernel } from './segment-sum';
import { splitVGradient, unpackGradient } from './split-gradients';
import { makeAliasIdentity, makeHeapConcat, makeHeapSlice, makeHeapSplitV, wasmHeapAccessible } from './wasm-data-movement';
import { COMPARISONS, makeBroadcastCompare } from './wasm-compare';
import { makeConv2DBackpropFilter, makeConv2DBackpropInput, makeDepthwiseBackpropFilter, makeDepthwiseBackpropInput, wasmConvAccessible } from './conv-gradients';
import { makePanelTranspose } from './wasm-transpose';

/** One fast path: a kernel or gradient replaced by a faster one that computes the same numbers. */
export interface FastPathInfo {
  /** Short stable id, as listed in BackendReport.fastPaths and accepted by initBackend({ fastPaths: [...] }). */
  id: string;
  /** Backends whose kernels it replaces; 'all' for a gradient (gradients are shared by every backend). */
  backends: readonly string[] | 'all';
  /** What it replaces and how, in one line. */
  description: string;
}

interface FastPath extends FastPathInfo {
  /** Installs it if it applies to the active backend `backend`; returns whether it is now installed. */
  install(backend: string): boolean;
  uninstall(): void;
}

type Installer = Pick<FastPath, 'install' | 'uninstall'>;

/** Replaces a kernel on one backend, remembering the one it replaced (restored on uninstall). */
function kernelOverride(
  kernelName: string,
  backendName: string,
  make: (original: tf.KernelConfig) => tf.KernelFunc | null,
): Installer {
  let replaced: tf.KernelConfig | undefined;
  let installed: tf.KernelFunc | null = null;
  const isOurs = () => installed !== null && tf.getKernel(kernelName, backendName)?.kernelFunc === installed;
  return {
    install(backend) {
      if (backend !== backendName) return false;
      if (isOurs()) return true;
      const current = tf.getKernel(kernelName, backendName);
      const kernelFunc = current ? make(current) : null;
      if (!current || !kernelFunc) return false;
      tf.unregisterKernel(kernelName, backendName);
      // Keep the replaced kernel's setup: it prepares wasm functions the original (still called) relies on.
      tf.registerKernel({ kernelName, backendName, kernelFunc, setupFunc: current.setupFunc, disposeFunc: current.disposeFunc });
      replaced = current;
      installed = kernelFunc;
      return true;
    },
    uninstall() {
      if (!isOurs()) return;
      tf.unregisterKernel(kernelName, backendName);
      if (replaced) tf.registerKernel(replaced);
      replaced = undefined;
      installed = null;
    },
  };
}

/** Several kernel overrides installed and removed together. */
function kernelOverrides(parts: Installer[]): Installer {
  return {
    install(backend) {
      const results = parts.map((part) => part.install(backend));
      if (results.every(Boolean)) return true;
      for (const part of parts) part.uninstall();
      return false;
    },
    uninstall() {
      for (const part of parts) part.uninstall();
    },
  };
}

/** Replaces gradients (shared by every backend), remembering the ones replaced (restored on uninstall). */
function gradientOverrides(configs: tf.GradConfig[]): Installer {
  const replaced = new Map<string, tf.GradConfig | undefined>();
  const isOurs = (config: tf.GradConfig) => tf.getGradient(config.kernelName) === config;
  return {
    install() {
      for (const config of configs) {
        if (isOurs(config)) continue;
        replaced.set(config.kernelName, tf.getGradient(config.kernelName));
        tf.registerGradient(config);
      }
      return true;
    },
    uninstall() {
      for (const config of configs) {
        if (!isOurs(config)) continue;
        const previous = replaced.get(config.kernelName);
        if (previous) tf.registerGradient(previous);
        replaced.delete(config.kernelName);
      }
    },
  };
}

const heapReady = () => wasmHeapAccessible(tf.findBackend('wasm'));
const convReady = () => wasmConvAccessible(tf.findBackend('wasm'));

const FAST_PATH_LIST: FastPath[] = [
  {
    id: 'matmul-gradient',
    backends: 'all',
    description: 'BatchMatMul gradient with explicit transposes and plain matMuls (no transpose flags); reduces broadcast batch dims',
    ...gradientOverrides([batchMatMulGradient]),
  },
  {
    id: 'split-gradient',
    backends: 'all',
    description: "SplitV and Unpack gradients that accept a one-piece split (tfjs's fail: 'Pass at least one tensor to concat')",
    ...gradientOverrides([splitVGradient, unpackGradient]),
  },
  {
    id: 'wasm-batch-matmul',
    backends: ['wasm'],
    description: 'BatchMatMul with transpose flags or batches runs on XNNPACK (explicit transpose, folded rows or per-slice views)',
    ...kernelOverride('BatchMatMul', 'wasm', (original) => {
      if (!tf.getKernel('Transpose', 'wasm') || !wasmBackendSupportsSlicedMatMul(tf.findBackend('wasm'))) return null;
      return makeSlicedBatchMatMul(original.kernelFunc, (args) => tf.getKernel('Transpose', 'wasm')!.kernelFunc(args));
    }),
  },
  {
    id: 'wasm-transpose',
    backends: ['wasm'],
    description: 'Transpose of a matrix with 128+ rows (multiple of 64) moved in 64-row panels (no cache-set aliasing)',
    ...kernelOverride('Transpose', 'wasm', (original) => makePanelTranspose(original.kernelFunc)),
  },
  {
    id: 'wasm-segment-sum',
    backends: ['wasm'],
    description: 'UnsortedSegmentSum (gather gradient: embeddings, picked logits) in one pass instead of the cpu fill-in',
    ...kernelOverride('UnsortedSegmentSum', 'wasm', () => segmentSumWasmKernel),
  },
  {
    id: 'cpu-segment-sum',
    backends: ['cpu'],
    description: "UnsortedSegmentSum in one pass instead of tfjs's loop over segments",
    ...kernelOverride('UnsortedSegmentSum', 'cpu', () => segmentSumCpuKernel),
  },
  {
    id: 'wasm-identity-alias',
    backends: ['wasm'],
    description: 'Identity (the clone of every tensor a gradient saves) shares the data instead of copying it',
    ...kernelOverride('Identity', 'wasm', (original) => makeAliasIdentity(original.kernelFunc)),
  },
  {
    id: 'wasm-slice-concat',
    backends: ['wasm'],
    description: 'Slice, SplitV and Concat copy from heap views with loops for short rows (no full-input copy per slice)',
    ...kernelOverrides([
      kernelOverride('Slice', 'wasm', (original) => (heapReady() ? makeHeapSlice(original.kernelFunc) : null)),
      kernelOverride('SplitV', 'wasm', (original) => (heapReady() ? makeHeapSplitV(original.kernelFunc) : null)),
      kernelOverride('Concat', 'wasm', (original) => (heapReady() ? makeHeapConcat(original.kernelFunc) : null)),
    ]),
  },
  {
    id: 'wasm-compare',
    backends: ['wasm'],
    description: 'Equal, NotEqual, Less, LessEqual, Greater, GreaterEqual with fast broadcasting (the gradient of max)',
    ...kernelOverrides(Object.keys(COMPARISONS).map((name) => kernelOverride(name, 'wasm', (original) => makeBroadcastCompare(name, original.kernelFunc)))),
  },
  {
    id: 'wasm-conv-filter-gradient',
    backends: ['wasm'],
    description: 'Conv2DBackpropFilter as a transposed im2col on heap views and XNNPACK matmuls, instead of the cpu fill-in',
    ...kernelOverride('Conv2DBackpropFilter', 'wasm', (original) => (convReady() ? makeConv2DBackpropFilter(original.kernelFunc) : null)),
  },
  {
    id: 'wasm-conv-input-gradient',
    backends: ['wasm'],
    description: "Conv2DBackpropInput (and conv2dTranspose) as one XNNPACK convolution per stride phase (sub-pixel decomposition), instead of wasm's naive loop",
    ...kernelOverride('Conv2DBackpropInput', 'wasm', (original) =>
      convReady() ? makeConv2DBackpropInput(original.kernelFunc, tf.getKernel('Conv2D', 'wasm')?.kernelFunc) : null,
    ),
  },
  {
    id: 'wasm-depthwise-gradients',
    backends: ['wasm'],
    description: 'Depthwise conv filter and input gradients as loops over heap views (bit for bit the cpu kernels), instead of the cpu fill-in on copies',
    ...kernelOverrides([
      kernelOverride('DepthwiseConv2dNativeBackpropFilter', 'wasm', (original) => (convReady() ? makeDepthwiseBackpropFilter(original.kernelFunc) : null)),
      kernelOverride('DepthwiseConv2dNativeBackpropInput', 'wasm', (original) => (convReady() ? makeDepthwiseBackpropInput(original.kernelFunc) : null)),
    ]),
  },
];

/** Every fast path Chimera knows, whether or not it applies to the current backend. */
export const FAST_PATHS: readonly FastPathInfo[] = FAST_PATH_LIST.map(({ id, backends, description }) => ({ id, backends, description }));

/**
 * Installs the fast paths that apply to `backend` (idempotent) and returns their ids. With `only`, installs just
 * those ids and removes the others (for measuring one path at a time); an unknown id is an error.
 */
export function installFastPaths(backend: string = tf.getBackend(), only?: readonly string[]): string[] {
  if (only) {
    const unknown = only.filter((id) => !FAST_PATH_LIST.some((path) => path.id === id));
    if (unknown.length > 0) {
      throw new Error(`installFastPaths: unknown fast path ${unknown.join(', ')}; known: ${FAST_PATH_LIST.map((p) => p.id).join(', ')}`);
    }
  }
  const installed: string[] = [];
  for (const path of FAST_PATH_LIST) {
    if (only && !only.includes(path.id)) path.uninstall();
    else if (path.install(backend)) installed.push(path.id);
  }
  return installed;
}

/** Removes every installed fast path and restores the kernels and gradients they replaced. */
export function uninstallFastPaths(): void {
  for (const path of FAST_PATH_LIST) path.uninstall();
}
