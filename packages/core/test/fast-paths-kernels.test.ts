import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/runtime/backend';
import { FAST_PATHS, installFastPaths } from '../src/runtime/fast-paths';
import { Rng } from '../src/runtime/random';

// Data-movement, comparison and segment-sum fast paths compute exactly what tfjs's cpu kernels compute:
// each case runs on the cpu backend with fast paths off (the reference) and on wasm (and cpu) with them on,
// and the outputs must be bit-for-bit equal. Where wasm's own arithmetic differs from cpu's (exp, log), the
// reference is wasm with fast paths off.

type Build = () => tf.Tensor | tf.Tensor[];

function read(build: Build): { shape: number[]; dtype: string; values: number[] }[] {
  const out = tf.tidy(build);
  const list = Array.isArray(out) ? out : [out];
  const data = list.map((t) => ({ shape: t.shape, dtype: t.dtype, values: Array.from(t.dataSync() as ArrayLike<number>) }));
  tf.dispose(list);
  return data;
}

async function expectSameAsReference(build: Build, backends: ('wasm' | 'cpu')[] = ['wasm'], referenceBackend: 'cpu' | 'wasm' = 'cpu'): Promise<void> {
  await initBackend({ backend: referenceBackend, fastPaths: false });
  const reference = read(build);
  for (const backend of backends) {
    await initBackend({ backend });
    expect(read(build), `${backend} with fast paths`).toEqual(reference);
  }
}

function floats(shape: number[], seed: number): tf.Tensor {
  const rng = new Rng(seed);
  return tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()), shape);
}

describe('fast path registry', () => {
  it('reports the installed fast paths per backend and installs a chosen subset', async () => {
    const wasm = await initBackend({ backend: 'wasm' });
    const wasmIds = FAST_PATHS.filter((p) => p.backends === 'all' || p.backends.includes('wasm')).map((p) => p.id);
    expect(wasm.fastPaths).toEqual(wasmIds);
    const cpu = await initBackend({ backend: 'cpu' });
    expect(cpu.fastPaths).toEqual(['matmul-gradient', 'split-gradient', 'cpu-segment-sum']);
    const some = await initBackend({ backend: 'wasm', fastPaths: ['wasm-segment-sum', 'wasm-compare'] });
    expect(some.fastPaths).toEqual(['wasm-segment-sum', 'wasm-compare']);
    const off = await initBackend({ backend: 'wasm', fastPaths: false });
    expect(off.fastPaths).toEqual([]);
    expect(() => installFastPaths('wasm', ['no-such-path'])).toThrow(/unknown fast path no-such-path; known: matmul-gradient/);
    await initBackend({ backend: 'wasm' });
  });

  it('keeps the thread count wasm started with, and rejects impossible thread counts', async () => {
    const first = await initBackend({ backend: 'wasm' });
    const report = await initBackend({ backend: 'wasm', threads: 3 });
    expect(report.threads).toBe(first.threads);
    expect(report.threadMode).toBe(first.threadMode);
    expect(report.reasons.join('\n')).toMatch(/threads: 3 not applied: wasm already started in this process/);
    await expect(initBackend({ backend: 'wasm', threads: 9 })).rejects.toThrow(/threads must be 'auto' or an integer from 1 to 8/);
    await expect(initBackend({ threads: 1.5 })).rejects.toThrow(/got 1.5/);
  });

  it('restores the wasm fill-in when the segment-sum fast path is removed, so training still works', async () => {
    await initBackend({ backend: 'wasm', fastPaths: false });
    const g = tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(tf.gather(t, tf.tensor1d([1, 1, 0], 'int32'))))(tf.ones([3, 2])));
    expect(Array.from(g.dataSync())).toEqual([1, 1, 2, 2, 0, 0]);
    g.dispose();
    await initBackend({ backend: 'wasm' });
  });
});

describe('SplitV and Unpack gradients (split-gradient)', () => {
  // Pieces weighted differently (and some unused, which the engine turns into zero gradients), so a gradient
  // that misplaces a piece changes the numbers.
  const weighted = (parts: tf.Tensor[], seed: number) =>
    parts.reduce((sum: tf.Tensor, part, i) => (i === 1 ? sum : tf.add(sum, tf.sum(tf.mul(part, floats(part.shape, seed + i))))), tf.scalar(0));

  it("equal tfjs's own gradients bit for bit where those work (two or more pieces, every axis)", async () => {
    await expectSameAsReference(() => {
      const x = floats([4, 6, 5], 21);
      const out: tf.Tensor[] = [];
      for (let axis = 0; axis < 3; axis++) {
        const size = x.shape[axis]!;
        const pieces = tf.split(x, [1, size - 2, 1], axis);
        out.push(...pieces, tf.grad((t: tf.Tensor) => weighted(tf.split(t, [1, size - 2, 1], axis), 30 + axis))(x));
        out.push(tf.grad((t: tf.Tensor) => weighted(tf.split(t, 2, axis === 2 ? 0 : axis), 40 + axis))(x));
        out.push(...tf.unstack(x, axis), tf.grad((t: tf.Tensor) => weighted(tf.unstack(t, axis), 50 + axis))(x));
      }
      return out;
    }, ['wasm', 'cpu']);
  });

  it('differentiate a one-piece split or unstack (tfjs throws) as the identity it is, bit for bit', async () => {
    const x = () => floats([1, 4, 3], 22);
    const w = () => floats([4, 3], 23);
    const direct = () => [tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.reshape(t, [4, 3]), w())))(x())];
    const viaSplit = () => [tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.reshape(tf.split(t, [1], 0)[0]!, [4, 3]), w())))(x())];
    const viaUnstack = () => [tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.unstack(t, 0)[0]!, w())))(x())];
    await initBackend({ backend: 'cpu', fastPaths: false });
    expect(() => read(viaSplit)).toThrow(/Pass at least one tensor to concat/);
    expect(() => read(viaUnstack)).toThrow(/must be a `Tensor\[\]`/);
    const reference = read(direct);
    for (const backend of ['cpu', 'wasm'] as const) {
      await initBackend({ backend });
      expect(read(viaSplit), `${backend}: split`).toEqual(reference);
      expect(read(viaUnstack), `${backend}: unstack`).toEqual(reference);
    }
  });
});

describe('UnsortedSegmentSum fast path', () => {
  it('sums rows per segment bit-for-bit like the cpu kernel (float, int, dropped ids)', async () => {
    await expectSameAsReference(() => {
      const x = floats([7, 3, 4], 1);
      const ids = tf.tensor1d([2, 0, 2, -1, 5, 4, 2], 'int32'); // -1 and 5 (>= numSegments) are dropped
      const ints = tf.tensor2d([[1, 2], [3, 4], [5, 6]], [3, 2], 'int32');
      return [tf.unsortedSegmentSum(x, ids, 5), tf.unsortedSegmentSum(ints, tf.tensor1d([1, 1, 0], 'int32'), 3)];
    }, ['wasm', 'cpu']);
  });

  it('gives the embedding and the picked-logit gradients of a language-model loss', async () => {
    await expectSameAsReference(() => {
      const table = floats([11, 6], 3);
      const ids = tf.tensor2d([[1, 4, 4, 9], [0, 1, 10, 1]], [2, 4], 'int32');
      const logits = floats([2, 4, 11], 4);
      const flatIndex = tf.tensor1d([3, 11 + 4, 22 + 9, 33 + 0, 44 + 1, 55 + 10, 66 + 1, 77 + 2], 'int32');
      const [gTable, gLogits] = tf.grads((t: tf.Tensor, l: tf.Tensor) =>
        tf.add(tf.sum(tf.square(tf.gather(t, ids))), tf.sum(tf.gather(tf.reshape(l, [-1]), flatIndex))),
      )([table, logits]);
      return [gTable!, gLogits!];
    }, ['wasm', 'cpu']);
  });
});

describe('wasm Identity, Slice, SplitV, Concat fast paths', () => {
  it('clones share the data yet behave as independent tensors, and free it once all are disposed', async () => {
    await initBackend({ backend: 'wasm' });
    const backend = tf.engine().backend;
    const tensors = tf.memory().numTensors;
    const buffers = backend.numDataIds();
    const x = tf.tensor1d([1, 2, 3]);
    const copy = tf.clone(x);
    expect(backend.numDataIds()).toBe(buffers + 1); // shared, not copied
    x.dispose();
    expect(Array.from(copy.dataSync())).toEqual([1, 2, 3]);
    const v = tf.variable(copy);
    tf.tidy(() => v.assign(tf.tensor1d([7, 8, 9])));
    expect(Array.from(copy.dataSync())).toEqual([1, 2, 3]);
    copy.dispose();
    v.dispose();
    tf.disposeVariables();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(backend.numDataIds()).toBe(buffers);
  });

  it('slices every rank and dtype like the cpu kernel', async () => {
    await expectSameAsReference(() => {
      const x5 = floats([2, 3, 4, 5, 6], 5);
      const ints = tf.cast(tf.mul(floats([4, 6, 5], 6), 10), 'int32');
      const bools = tf.greater(floats([3, 7], 7), 0);
      return [
        tf.slice(floats([10], 8), [3], [4]),
        tf.slice(floats([6, 9], 9), [1, 2], [3, 5]),
        tf.slice(floats([6, 9], 9), [2, 0], [3, 9]), // whole rows: one contiguous run
        tf.slice(ints, [1, 2, 1], [2, 3, -1]),
        tf.slice(bools, [1, 3], [2, 4]),
        tf.slice(floats([4, 5, 6, 7], 10), [1, 0, 2, 3], [2, 5, 3, 4]),
        tf.slice(x5, [1, 1, 0, 2, 1], [1, 2, 4, 2, 5]),
        tf.slice(x5, [0, 0, 0, 0, 0], [2, 3, 4, 5, 0]), // empty
      ];
    });
  });

  it('splits and concatenates along every axis like the cpu kernels', async () => {
    await expectSameAsReference(() => {
      const x = floats([2, 4, 6, 8], 11);
      const out: tf.Tensor[] = [];
      for (let axis = 0; axis < 4; axis++) {
        out.push(...tf.split(x, 2, axis));
        out.push(...tf.split(x, [1, x.shape[axis]! - 1], axis));
        const [a, b] = tf.split(x, 2, axis);
        out.push(tf.concat([b!, a!, b!], axis));
      }
      const ints = tf.cast(tf.mul(floats([3, 5], 12), 10), 'int32');
      out.push(tf.concat([ints, ints], 1), ...tf.split(ints, [2, 3], 1));
      out.push(tf.concat([tf.zeros([2, 0]), floats([2, 3], 13), tf.zeros([2, 0]), floats([2, 2], 14)], 1));
      return out;
    });
  });

  it("keeps RoPE's rotate-half gradient (split and concat) identical", async () => {
    await expectSameAsReference(() => {
      const x = floats([2, 2, 5, 8], 15);
      const w = floats([2, 2, 5, 8], 16);
      const rotate = (t: tf.Tensor) => {
        const [x1, x2] = tf.split(t, 2, -1);
        return tf.concat([tf.neg(x2!), x1!], -1);
      };
      return tf.grad((t: tf.Tensor) => tf.sum(tf.mul(rotate(t), w)))(x);
    });
  });
});

describe('wasm Transpose fast path (64-row panels)', () => {
  it('transposes matrices of every eligible and ineligible shape and dtype like the cpu kernel', async () => {
    await expectSameAsReference(() => {
      const out: tf.Tensor[] = [];
      // Panelled: rows a multiple of 64 (2+ panels), 16384+ elements; [1, R, C] is still a single matrix.
      for (const shape of [[512, 96], [320, 72], [192, 130], [1, 384, 50]]) out.push(tf.transpose(floats(shape, shape[0]!), [...shape.keys()].map((i, _, k) => (i < k.length - 2 ? i : 2 * k.length - 3 - i))));
      const ints = tf.cast(tf.mul(floats([256, 80], 3), 100), 'int32');
      out.push(tf.transpose(ints), tf.transpose(tf.greater(floats([128, 160], 4), 0)));
      // Not panelled: rows not a multiple of 64, small, batched, or another permutation.
      out.push(tf.transpose(floats([200, 100], 5)), tf.transpose(floats([128, 64], 6)), tf.transpose(floats([2, 256, 128], 7), [0, 2, 1]));
      out.push(tf.transpose(floats([256, 2, 64], 8), [1, 0, 2]));
      return out;
    });
  });

  it("keeps a linear layer's gradients (transposed input and weight) identical", async () => {
    // Reference: wasm with every other fast path (tfjs's flagged matmuls would round differently).
    const build = () => tf.grads((a: tf.Tensor, w: tf.Tensor) => tf.sum(tf.square(tf.matMul(a, w))))([floats([256, 96], 9), floats([96, 128], 10)]);
    const others = FAST_PATHS.map((p) => p.id).filter((id) => id !== 'wasm-transpose');
    const without = await initBackend({ backend: 'wasm', fastPaths: others });
    expect(without.fastPaths).not.toContain('wasm-transpose');
    const reference = read(build);
    const withIt = await initBackend({ backend: 'wasm' });
    expect(withIt.fastPaths).toContain('wasm-transpose');
    expect(read(build)).toEqual(reference);
  });
});

describe('wasm comparison fast paths', () => {
  it('compare with broadcasting, NaN and ints like the cpu kernels', async () => {
    await expectSameAsReference(() => {
      const x = tf.tensor3d([1, NaN, 3, 4, 5, 6, 7, 8, 9, 10, 11, 3], [2, 2, 3]);
      const rowMax = tf.max(x, -1, true);
      const ints = tf.tensor2d([[1, 2, 3], [3, 2, 1]], [2, 3], 'int32');
      const column = tf.tensor2d([[2], [3]], [2, 1], 'int32');
      const out: tf.Tensor[] = [];
      for (const op of [tf.equal, tf.notEqual, tf.less, tf.lessEqual, tf.greater, tf.greaterEqual]) {
        out.push(op(x, rowMax), op(x, tf.scalar(3)), op(x, tf.tensor1d([3, NaN, 5])), op(ints, column), op(tf.scalar(2), tf.scalar(2)));
        out.push(op(floats([3, 1, 4], 17), floats([1, 5, 1], 18)));
        out.push(op(x, tf.reverse(x, -1))); // equal shapes: tfjs's own kernel
      }
      return out;
    });
  });

  it("keeps max's gradient (the mask of the maxima) identical", async () => {
    const build = () => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.max(t, -1), tf.tensor1d([1, 2, 3]))))(tf.tensor2d([[1, 5, 5], [2, 0, -1], [3, 3, 3]]));
    await expectSameAsReference(build);
    const lse = () => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.logSumExp(t, -1), tf.tensor1d([1, 2, 3]))))(floats([3, 9], 19));
    await expectSameAsReference(lse, ['wasm'], 'wasm'); // exp and log: wasm's own arithmetic
  });
});
