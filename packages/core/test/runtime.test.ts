import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { assertKernels, initBackend, TRAINING_KERNELS } from '../src/runtime/backend';
import { WASM_FILL_IN_KERNELS } from '../src/runtime/wasm-fill-ins';
import { cgroupQuotaCores, cpuSnapshot, cpuWindow, threadsForLoad, usableCores } from '../src/runtime/core-capacity';
import { analyzeThreadedBinary } from '../src/runtime/wasm-threads';
import { MIN_PARALLEL_ELEMENTS, MIN_PARALLEL_FLOPS, threadPolicyStatus, worthParallel } from '../src/runtime/thread-policy';

describe('initBackend', () => {
  it('falls back past tensorflow to wasm here and says why', async () => {
    const report = await initBackend();
    expect(report.backend).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(report.reasons[0]).toMatch(/tensorflow: @tensorflow\/tfjs-node-gpu not available/);
    expect(report.reasons.at(-1)).toMatch(/^wasm: chosen/);
  });

  it('forces a backend when asked', async () => {
    const report = await initBackend({ backend: 'cpu' });
    expect(report.backend).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
  });

  it('fails clearly when a forced backend cannot start', async () => {
    await expect(initBackend({ backend: 'tensorflow' })).rejects.toThrow(/could not start backend 'tensorflow'/);
  });

  it('starts wasm on a pool that follows the load by default, and says so', async () => {
    const report = await initBackend();
    if (usableCores() < 2) {
      expect(report.threadMode).toBe('single');
      expect(report.reasons).toContain('wasm: threads: 1 (this process may use 1 core)');
      return;
    }
    expect(report.threadMode, report.reasons.join('\n')).toBe('adaptive');
    expect(report.threads).toBe(Math.min(usableCores(), 8));
    expect(report.reasons.at(-1)).toMatch(/^wasm: chosen \(XNNPACK; threads: up to \d, adaptive: \d now/);
    expect(threadPolicyStatus()).toMatchObject({ mode: 'adaptive', poolSize: report.threads });
    // A later call cannot change the pool, and says why.
    const again = await initBackend({ threads: 1 });
    expect(again.threadMode).toBe('adaptive');
    expect(again.reasons).toContainEqual(expect.stringMatching(/^wasm: threads: 1 not applied: wasm already started in this process with a pool of \d, adaptive/));
  });

  it('rejects a thread count it cannot start, saying what it takes', async () => {
    for (const threads of [0, 9, 1.5, 'two']) {
      await expect(initBackend({ threads: threads as number })).rejects.toThrow(`threads must be 'auto' or an integer from 1 to 8 (tfjs's wasm pool has 8 workers), got ${threads}`);
    }
  });
});

describe('core capacity', () => {
  it("measures other processes' CPU time as the machine's minus this process's", () => {
    const from = { wallMs: 1000, busyMs: 50_000, ownMs: 2_000 };
    expect(cpuWindow(from, { wallMs: 1500, busyMs: 50_900, ownMs: 2_400 })).toEqual({ wallMs: 500, othersCores: 1, ownCores: 0.8 });
    expect(cpuWindow(from, { wallMs: 1500, busyMs: 50_300, ownMs: 2_400 })!.othersCores).toBe(0); // counters tick apart: never negative
    expect(cpuWindow(from, from)).toBeNull();
    const a = cpuSnapshot();
    const b = cpuSnapshot();
    expect(b.busyMs).toBeGreaterThanOrEqual(a.busyMs);
    expect(b.ownMs).toBeGreaterThanOrEqual(a.ownMs);
  });

  it('leaves a thread for every core other processes leave free', () => {
    expect(threadsForLoad(0, 2, 2)).toBe(2);
    expect(threadsForLoad(0.3, 2, 2)).toBe(2);
    expect(threadsForLoad(0.4, 2, 2)).toBe(1);
    expect(threadsForLoad(0.67, 2, 2)).toBe(1); // a busy process squeezed by our two threads
    expect(threadsForLoad(1, 2, 2)).toBe(1);
    expect(threadsForLoad(3, 2, 2)).toBe(1);
    expect(threadsForLoad(1, 8, 4)).toBe(4);
    expect(threadsForLoad(5.2, 8, 8)).toBe(3);
  });

  it('reads a cgroup CPU quota (v2 and v1) and no quota as null', () => {
    const files = (map: Record<string, string>) => (path: string) => map[path] ?? null;
    expect(cgroupQuotaCores(files({ '/sys/fs/cgroup/cpu.max': '150000 100000\n' }))).toBe(1.5);
    expect(cgroupQuotaCores(files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' }))).toBeNull();
    expect(cgroupQuotaCores(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '200000\n', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' }))).toBe(2);
    expect(cgroupQuotaCores(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1\n', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' }))).toBeNull();
    expect(cgroupQuotaCores(files({}))).toBeNull();
    expect(usableCores()).toBeGreaterThanOrEqual(1);
  });
});

describe('wasm thread pool', () => {
  const dist = dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm'));

  it("locates the pool's thread count and the worker's spin loop in the shipped threaded binary, and nothing in other bytes", () => {
    const bytes = readFileSync(join(dist, 'tfjs-backend-wasm-threaded-simd.wasm'));
    const info = analyzeThreadedBinary(bytes)!;
    expect(info).not.toBeNull();
    expect(info.poolPointerAddress).toBeGreaterThan(0);
    expect(info.poolPointerAddress % 4).toBe(0);
    expect(info.threadsCountOffset % 4).toBe(0);
    expect(info.spin).toMatchObject({ checks: 1_000_000, step: 5 });
    expect([...bytes.subarray(info.spin!.offset - 1, info.spin!.offset + 3)]).toEqual([0x41, 0xc0, 0x84, 0x3d]); // i32.const 1000000
    expect(analyzeThreadedBinary(new Uint8Array(64))).toBeNull();
    expect(analyzeThreadedBinary(bytes.subarray(0, 1000))).toBeNull();
  });

  it('splits only the operations that gain from a second thread', () => {
    const t = (shape: number[]) => ({ shape, dtype: 'float32', dataId: {} }) as unknown as tf.TensorInfo;
    // A decode step's projection (1 x 256 x 688: 0.35 MFLOP) stays on one thread; a training projection is split.
    expect(worthParallel('BatchMatMul', { a: t([1, 256]), b: t([256, 688]) }, {})).toBe(false);
    expect(worthParallel('BatchMatMul', { a: t([1024, 256]), b: t([256, 688]) }, {})).toBe(true);
    expect(worthParallel('BatchMatMul', { a: t([256, 1024]), b: t([256, 688]) }, { transposeA: true })).toBe(true);
    expect(worthParallel('BatchMatMul', { a: t([32, 1, 64]), b: t([32, 64, 512]) }, {})).toBe(false); // per slice
    expect(MIN_PARALLEL_FLOPS).toBe(1_000_000);
    expect(worthParallel('Conv2D', { x: t([1, 64, 64, 3]), filter: t([4, 4, 3, 64]) }, { strides: 4 })).toBe(true);
    expect(worthParallel('Conv2D', { x: t([1, 8, 8, 3]), filter: t([3, 3, 3, 8]) }, { strides: 1 })).toBe(false);
    expect(worthParallel('Conv2DBackpropFilter', { x: t([8, 32, 32, 16]), dy: t([8, 32, 32, 32]) }, { filterShape: [3, 3, 16, 32] })).toBe(true);
    expect(worthParallel('Sigmoid', { x: t([MIN_PARALLEL_ELEMENTS]) }, {})).toBe(true);
    expect(worthParallel('Sigmoid', { x: t([MIN_PARALLEL_ELEMENTS - 1]) }, {})).toBe(false);
    expect(worthParallel('Softmax', { logits: t([8, 128, 512]) }, { dim: -1 })).toBe(true);
    // Memory-bound elementwise arithmetic gained nothing on two threads (bench/threads.ts).
    expect(worthParallel('Add', { a: t([1 << 22]), b: t([1 << 22]) }, {})).toBe(false);
    expect(worthParallel('Multiply', { a: t([1 << 22]), b: t([1 << 22]) }, {})).toBe(false);
  });
});

describe('wasm kernel fill-ins', () => {
  it('installs every training kernel so assertKernels passes', async () => {
    await initBackend({ backend: 'wasm' });
    expect(() => assertKernels(TRAINING_KERNELS)).not.toThrow();
    for (const name of WASM_FILL_IN_KERNELS) expect(tf.getKernel(name, 'wasm')).toBeDefined();
  });

  it('names the missing kernel and the backend', () => {
    expect(() => assertKernels(['UnsortedSegmentSum', 'NoSuchKernel'], 'wasm')).toThrow(
      /backend 'wasm' lacks kernel NoSuchKernel/,
    );
  });

  async function onBoth<T>(fn: () => T): Promise<[T, T]> {
    await initBackend({ backend: 'cpu' });
    const onCpu = fn();
    await initBackend({ backend: 'wasm' });
    return [onCpu, fn()];
  }

  it('gives the embedding (gather) gradient the cpu backend gives', async () => {
    const [cpu, wasm] = await onBoth(() =>
      tf.tidy(() => {
        const table = tf.tensor2d([[1, 2], [3, 4], [5, 6]]);
        const ids = tf.tensor1d([2, 0, 2, 1, 2], 'int32');
        const weights = tf.tensor2d([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]);
        const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, ids), weights)))(table);
        return Array.from(g.dataSync());
      }),
    );
    expect(wasm).toEqual(cpu);
    expect(wasm).toEqual([3, 4, 7, 8, 15, 18]);
  });

  it('gives the conv2d filter gradient the cpu backend gives', async () => {
    const [cpu, wasm] = await onBoth(() =>
      tf.tidy(() => {
        const x = tf.tensor4d(Array.from({ length: 2 * 5 * 5 * 3 }, (_, i) => Math.sin(i)), [2, 5, 5, 3]);
        const w = tf.tensor4d(Array.from({ length: 3 * 3 * 3 * 4 }, (_, i) => Math.cos(i)), [3, 3, 3, 4]);
        const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'))),
        )([x, w]);
        return [...gx!.dataSync(), ...gw!.dataSync()];
      }),
    );
    expect(wasm.length).toBe(cpu.length);
    wasm.forEach((v, i) => expect(v).toBeCloseTo(cpu[i]!, 3));
  });

  it('leaves no tensors behind', async () => {
    await initBackend({ backend: 'wasm' });
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      tf.grad((t: tf.Tensor) => tf.sum(tf.gather(t, tf.tensor1d([0, 0], 'int32'))))(tf.ones([2, 2]));
    });
    expect(tf.memory().numTensors).toBe(before);
  });
});
