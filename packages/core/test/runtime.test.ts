import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { assertKernels, initBackend, TRAINING_KERNELS } from '../src/runtime/backend';
import { WASM_FILL_IN_KERNELS } from '../src/runtime/wasm-fill-ins';

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
