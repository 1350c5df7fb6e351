/**
 * Which wasm operations run on XNNPACK's thread pool, and on how many threads (wasm-threads.ts explains the pool
 * and how its thread count is switched). Every kernel that tfjs's engine runs passes through one hook on
 * `engine.runKernelFunc`, which sets the pool's count for a kernel worth splitting and restores it afterwards (the
 * pool rests at 1 thread, and whatever a kernel runs inside it runs at the kernel's count):
 *
 * - **Only operations that gain from a second thread use it.** A parallel operation costs a wake-up of the
 *   worker and a wait for it (tens of microseconds when it sleeps); matmuls, convolutions and the exp-heavy
 *   Sigmoid and Softmax gain when they are large enough (POOL_KERNELS, MIN_PARALLEL_FLOPS, MIN_PARALLEL_ELEMENTS);
 *   elementwise arithmetic (Add, Multiply, ...) is memory-bound and gained nothing on 2 threads at any size
 *   (bench/threads.ts), so it, like every other kernel, runs on the calling thread alone.
 * - **Adaptive mode** (initBackend's default): those operations use as many threads as the machine leaves free.
 *   Every CHECK_INTERVAL_MS of wall time while kernels run, the CPU time other processes used over the last
 *   window is measured (core-capacity.ts); while they keep more than FREE_CORE_SLACK of the second core busy,
 *   everything runs on 1 thread. A pool thread that has to wait for a core makes every parallel operation wait
 *   for it, and its busy-waiting takes time from the main thread (bench/README.md, threads section).
 * - **Fixed mode** (`initBackend({ threads: n })`): those operations always use the whole pool.
 *
 * The thread count only decides how XNNPACK splits an operation's output, never a sum, so the numbers are the same
 * bits on any count (checked in fast-paths-threads.test.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { cpuSnapshot, cpuWindow, threadsForLoad, usableCores, FREE_CORE_SLACK, type CpuSnapshot } from './core-capacity';
import type { WasmPool } from './wasm-threads';

/** Wall time between two measurements of the other processes' CPU use, while kernels run (ms). */
export const CHECK_INTERVAL_MS = 500;
/** A matmul or convolution runs in parallel from this many floating-point operations per XNNPACK call. */
export const MIN_PARALLEL_FLOPS = 1_000_000;
/** Sigmoid and Softmax run in parallel from this many elements. */
export const MIN_PARALLEL_ELEMENTS = 16_384;

type Work = (inputs: Record<string, tf.TensorInfo>, attrs: Record<string, unknown>) => { flops?: number; elements?: number };

const size = (t: tf.TensorInfo | undefined) => (t ? t.shape.reduce((a, b) => a * b, 1) : 0);
const pair = (v: unknown): [number, number] => (Array.isArray(v) ? [Number(v[0]), Number(v[1] ?? v[0])] : [Number(v ?? 1), Number(v ?? 1)]);

/** 2-D product per batch slice (each slice is one XNNPACK call in the sliced BatchMatMul fast path). */
const matmulWork: Work = ({ a, b }, attrs) => {
  if (!a || !b || a.shape.length < 2 || b.shape.length < 2) return {};
  const m = a.shape[a.shape.length - (attrs.transposeA ? 1 : 2)]!;
  const k = a.shape[a.shape.length - (attrs.transposeA ? 2 : 1)]!;
  const n = b.shape[b.shape.length - (attrs.transposeB ? 2 : 1)]!;
  return { flops: 2 * m * k * n };
};

/** Conv2D-like: 2 x input pixels x filter taps x output channels / stride area (NHWC). */
const convWork: Work = ({ x, filter }, attrs) => {
  if (!x || !filter || x.shape.length !== 4 || filter.shape.length !== 4) return {};
  const [sh, sw] = pair(attrs.strides);
  const [kh, kw, , out] = filter.shape as [number, number, number, number];
  return { flops: (2 * size(x) * kh * kw * out) / Math.max(1, sh * sw) };
};

/** The input gradient: 2 x dy elements x filter taps x input channels. */
const convInputGradWork: Work = ({ dy, filter }) => {
  if (!dy || !filter || filter.shape.length !== 4) return {};
  const [kh, kw, inC] = filter.shape as [number, number, number, number];
  return { flops: 2 * size(dy) * kh * kw * inC };
};

/** The filter gradient: 2 x dy elements x filter taps x input channels (filterShape [kH, kW, in, out]). */
const convFilterGradWork: Work = ({ dy }, attrs) => {
  const shape = attrs.filterShape as number[] | undefined;
  if (!dy || !shape || shape.length !== 4) return {};
  return { flops: 2 * size(dy) * shape[0]! * shape[1]! * shape[2]! };
};

const depthwiseWork: Work = ({ x, filter }, attrs) => {
  if (!x || !filter || filter.shape.length !== 4) return {};
  const [sh, sw] = pair(attrs.strides);
  const [kh, kw, , mult] = filter.shape as [number, number, number, number];
  return { flops: (2 * size(x) * kh * kw * mult) / Math.max(1, sh * sw) };
};

const elementsWork: Work = ({ x, logits }) => ({ elements: size(x ?? logits) });

/** Kernels that run XNNPACK operations worth splitting, and how much work a call does. */
export const POOL_KERNELS: Readonly<Record<string, Work>> = {
  BatchMatMul: matmulWork,
  _FusedMatMul: matmulWork,
  Conv2D: convWork,
  FusedConv2D: convWork,
  Conv2DBackpropInput: convInputGradWork,
  Conv2DBackpropFilter: convFilterGradWork,
  DepthwiseConv2dNative: depthwiseWork,
  FusedDepthwiseConv2D: depthwiseWork,
  Sigmoid: elementsWork,
  Softmax: elementsWork,
};

/** Whether a call is large enough to split (exported for tests). */
export function worthParallel(kernelName: string, inputs: Record<string, tf.TensorInfo>, attrs: Record<string, unknown>): boolean {
  const work = POOL_KERNELS[kernelName];
  if (!work) return false;
  const { flops, elements } = work(inputs, attrs);
  return (flops ?? 0) >= MIN_PARALLEL_FLOPS || (elements ?? 0) >= MIN_PARALLEL_ELEMENTS;
}

/**
 * 'adaptive' drops large operations to one thread while other processes keep cores busy; 'fixed' always uses the
 * whole pool.
 */
export type ThreadMode = 'adaptive' | 'fixed';

/** What the policy is doing (for reports, benchmarks and tests). */
export interface ThreadPolicyStatus {
  /** The policy in force. */
  mode: ThreadMode;
  /** Threads in the pool. */
  poolSize: number;
  /** Threads large operations run on now (the pool's size in fixed mode; what the load allows in adaptive mode). */
  threads: number;
  /** Cores other processes kept busy in the last measured window (null before the first one, or in fixed mode). */
  othersCores: number | null;
  /** Cores this process may use (CPUs and cgroup quota). */
  cores: number;
  /** Measurements taken and changes of `threads` since the policy was installed. */
  checks: number;
  /** Changes of `threads` since the policy was installed. */
  switches: number;
  /** Whether the pool's workers sleep after a short spin (wasm-threads.ts); false: pthreadpool's own 1.5 ms spin. */
  spinShortened: boolean;
}

interface Policy {
  pool: WasmPool;
  mode: ThreadMode;
  cores: number;
  threads: number;
  othersCores: number | null;
  last: CpuSnapshot;
  checks: number;
  switches: number;
  spinShortened: boolean;
  /** Kernel calls seen (the clock is read every 64). */
  calls: number;
  /** Tests and benchmarks: a fixed load, instead of measuring (null: measure). */
  forcedOthers: number | null;
}

let policy: Policy | null = null;
let hooked = false;

function recheck(p: Policy, now: number): void {
  if (p.mode !== 'adaptive' || now - p.last.wallMs < CHECK_INTERVAL_MS) return;
  const snapshot = cpuSnapshot();
  const window = cpuWindow(p.last, snapshot);
  p.last = snapshot;
  if (!window) return;
  p.checks++;
  p.othersCores = p.forcedOthers ?? window.othersCores;
  const threads = threadsForLoad(p.othersCores, p.cores, p.pool.size);
  if (threads !== p.threads) p.switches++;
  p.threads = threads;
}

/** Wraps the engine's kernel dispatch once per process; the wrapper does nothing unless a policy is installed and wasm runs. */
function hookEngine(): void {
  if (hooked) return;
  const engine = tf.engine() as unknown as {
    backendName: string | null;
    runKernelFunc(params: { kernelName?: string; inputs?: Record<string, tf.TensorInfo>; attrs?: Record<string, unknown> }): unknown;
  };
  const original = engine.runKernelFunc;
  if (typeof original !== 'function') throw new Error("thread policy: this tfjs engine has no runKernelFunc (tfjs 4.x's kernel dispatch)");
  engine.runKernelFunc = function (this: typeof engine, params) {
    const p = policy;
    if (p === null || this.backendName !== 'wasm') return original.call(this, params);
    // Most calls take the first return: a property lookup, and a clock read every 64 calls. Pool kernels, which are
    // the long ones, read it every time, so a run of large operations is re-checked on time too.
    const name = params.kernelName;
    const pooled = name !== undefined && name in POOL_KERNELS;
    if (pooled || (++p.calls & 63) === 0) recheck(p, performance.now());
    if (p.threads === 1 || !pooled || !worthParallel(name!, params.inputs ?? {}, params.attrs ?? {})) return original.call(this, params);
    const before = p.pool.active();
    p.pool.setActive(p.threads);
    try {
      return original.call(this, params);
    } finally {
      p.pool.setActive(before);
    }
  };
  hooked = true;
}

/**
 * Installs the policy for the running threaded wasm backend. In adaptive mode, `since` is a CPU snapshot taken
 * before the backend started: the other processes' use since then decides the first thread count.
 */
export function installThreadPolicy(pool: WasmPool, mode: ThreadMode, spinShortened: boolean, since?: CpuSnapshot): ThreadPolicyStatus {
  hookEngine();
  const now = cpuSnapshot();
  const cores = usableCores();
  let threads = pool.size;
  let othersCores: number | null = null;
  if (mode === 'adaptive') {
    const window = since ? cpuWindow(since, now) : null;
    othersCores = window ? window.othersCores : null;
    threads = threadsForLoad(othersCores ?? 0, cores, pool.size);
  }
  pool.setActive(1); // between kernels, and for kernels not worth splitting
  policy = { pool, mode, cores, threads, othersCores, last: now, checks: othersCores === null ? 0 : 1, switches: 0, spinShortened, calls: 0, forcedOthers: null };
  return threadPolicyStatus()!;
}

/** The installed policy's state, or null when wasm runs without a thread pool. */
export function threadPolicyStatus(): ThreadPolicyStatus | null {
  if (!policy) return null;
  const { mode, pool, threads, othersCores, cores, checks, switches, spinShortened } = policy;
  return { mode, poolSize: pool.size, threads, othersCores, cores, checks, switches, spinShortened };
}

/**
 * Tests and benchmarks: pretend other processes keep `cores` cores busy (null: measure again), applied at the next
 * check, or at once with `now`. Adaptive mode only.
 */
export function forceOthersLoad(cores: number | null, now = false): void {
  if (!policy || policy.mode !== 'adaptive') throw new Error('forceOthersLoad: no adaptive thread policy is installed (initBackend() on wasm with threads)');
  policy.forcedOthers = cores;
  if (now) {
    policy.last = { ...policy.last, wallMs: -Infinity };
    recheck(policy, performance.now());
  }
}

/** One line for the backend report. */
export function describeThreadPolicy(status: ThreadPolicyStatus): string {
  const spin = status.spinShortened ? '' : "; the workers' idle spin could not be shortened";
  if (status.mode === 'fixed') {
    return `threads: ${status.poolSize}, fixed (matmuls and convolutions of at least ${MIN_PARALLEL_FLOPS / 1e6} MFLOP, Sigmoid and Softmax of at least ${MIN_PARALLEL_ELEMENTS} elements run on all ${status.poolSize} threads; other kernels on 1${spin})`;
  }
  const when = status.checks > 1 ? 'in the last check' : 'while wasm started';
  const load = status.othersCores === null ? 'not measured yet' : `other processes used ${status.othersCores.toFixed(2)} of ${status.cores} cores ${when}`;
  return (
    `threads: up to ${status.poolSize}, adaptive: ${status.threads} now (${load}; ` +
    `large matmuls, convolutions, Sigmoid and Softmax use the free cores, re-checked every ${CHECK_INTERVAL_MS / 1000} s, ` +
    `and everything runs on 1 thread while other processes use more than ${FREE_CORE_SLACK} of a core${spin})`
  );
}
