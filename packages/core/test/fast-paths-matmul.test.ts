import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/runtime/backend';
import { Rng } from '../src/runtime/random';

// The BatchMatMul fast paths (wasm kernel and the gradient) against an independent reference: tfjs's own cpu
// kernels and gradient (fast paths off) on operands broadcast explicitly to the full batch shape, so the
// reference never depends on broadcasting inside matMul (tfjs's cpu kernel gets e.g. [2,1] x [1,3] wrong).

/** Float32 results of different summation orders: 1e-5 relative to the magnitude (absolute below 1). */
const TOLERANCE = 1e-5;

function values(shape: number[], seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.next() * 2 - 1);
}

/** Runs fn (returning tensors) and gives their data; nothing is left behind. */
function read(fn: () => tf.Tensor[]): Float32Array[] {
  const out = tf.tidy(fn);
  const data = out.map((t) => t.dataSync().slice() as Float32Array);
  tf.dispose(out);
  return data;
}

function expectClose(actual: Float32Array[], expected: Float32Array[], label: string): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => {
    const e = expected[i]!;
    expect(a.length, `${label} output ${i} length`).toBe(e.length);
    let worst = 0;
    for (let j = 0; j < a.length; j++) worst = Math.max(worst, Math.abs(a[j]! - e[j]!) / Math.max(1, Math.abs(e[j]!)));
    expect(worst, `${label} output ${i}: max relative difference`).toBeLessThanOrEqual(TOLERANCE);
  });
}

const swap = (shape: number[]) => [...shape.slice(0, -2), shape[shape.length - 1]!, shape[shape.length - 2]!];

/** Shapes of op(a) [.., M, K] and op(b) [.., K, N] before transposition flags are applied. */
const SHAPES: { name: string; a: number[]; b: number[]; cpuKernelWrong?: boolean }[] = [
  { name: '2-D', a: [5, 33], b: [33, 6] },
  { name: 'batched 3-D', a: [3, 5, 33], b: [3, 33, 4] },
  { name: 'batched 4-D (attention heads)', a: [2, 3, 5, 17], b: [2, 3, 17, 4] },
  { name: 'batched 5-D', a: [2, 2, 2, 4, 9], b: [2, 2, 2, 9, 3] },
  { name: 'shared right matrix, rank 3 x 2', a: [3, 5, 33], b: [33, 4] },
  { name: 'shared right matrix [1, K, N]', a: [3, 5, 33], b: [1, 33, 4] },
  { name: 'shared left matrix, rank 2 x 3', a: [5, 33], b: [3, 33, 4] },
  { name: 'shared left matrix [1, M, K]', a: [1, 5, 33], b: [3, 33, 4] },
  { name: 'leading broadcast [3,M,K] x [2,3,K,N]', a: [3, 5, 9], b: [2, 3, 9, 4] },
  // tfjs's own cpu kernel indexes batches modulo each operand's batch size, wrong here; wasm's fast path is right.
  { name: 'crossed broadcast [2,1] x [1,3]', a: [2, 1, 5, 9], b: [1, 3, 9, 4], cpuKernelWrong: true },
];

const FLAGS: [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

function outer(shape: number[], rank: number): number[] {
  return [...new Array<number>(rank - shape.length).fill(1), ...shape.slice(0, -2)];
}

/** a @ b with the flags, the operands broadcast explicitly first (so tfjs's kernel and gradient see equal batches). */
function referenceProduct(a: tf.Tensor, b: tf.Tensor, transposeA: boolean, transposeB: boolean): tf.Tensor {
  const rank = Math.max(a.rank, b.rank);
  const batch = tf.broadcast_util.assertAndGetBroadcastShape(outer(a.shape, rank), outer(b.shape, rank));
  const full = (t: tf.Tensor) => tf.broadcastTo(tf.reshape(t, [...outer(t.shape, rank), ...t.shape.slice(-2)]), [...batch, ...t.shape.slice(-2)]);
  return tf.matMul(full(a), full(b), transposeA, transposeB);
}

function productAndGrads(
  product: (a: tf.Tensor, b: tf.Tensor, tA: boolean, tB: boolean) => tf.Tensor,
  aShape: number[],
  bShape: number[],
  transposeA: boolean,
  transposeB: boolean,
): Float32Array[] {
  return read(() => {
    const a = tf.tensor(values(aShape, 1), aShape);
    const b = tf.tensor(values(bShape, 2), bShape);
    const y = product(a, b, transposeA, transposeB);
    const weights = tf.tensor(values(y.shape, 3), y.shape); // a non-uniform upstream gradient
    const [ga, gb] = tf.grads((x: tf.Tensor, z: tf.Tensor) => tf.sum(tf.mul(product(x, z, transposeA, transposeB), weights)))([a, b]);
    return [y, ga!, gb!];
  });
}

describe('BatchMatMul fast paths', () => {
  for (const shapes of SHAPES) {
    for (const [transposeA, transposeB] of FLAGS) {
      const aShape = transposeA ? swap(shapes.a) : shapes.a;
      const bShape = transposeB ? swap(shapes.b) : shapes.b;
      it(`${shapes.name}, transposeA=${transposeA}, transposeB=${transposeB}: wasm and cpu match the reference, forward and backward`, async () => {
        await initBackend({ backend: 'cpu', fastPaths: false });
        const reference = productAndGrads(referenceProduct, aShape, bShape, transposeA, transposeB);
        const direct = (a: tf.Tensor, b: tf.Tensor, tA: boolean, tB: boolean) => tf.matMul(a, b, tA, tB);
        await initBackend({ backend: 'wasm' });
        expectClose(productAndGrads(direct, aShape, bShape, transposeA, transposeB), reference, 'wasm');
        if (shapes.cpuKernelWrong) return;
        await initBackend({ backend: 'cpu' }); // the gradient is global: check it on cpu too
        expectClose(productAndGrads(direct, aShape, bShape, transposeA, transposeB), reference, 'cpu');
      });
    }
  }

  it('matches at XNNPACK sizes (attention scores and a linear layer), forward and backward', async () => {
    const cases = [
      { a: [2, 4, 64, 32], b: [2, 4, 32, 64], tA: false, tB: false },
      { a: [2, 4, 64, 32], b: [2, 4, 64, 32], tA: false, tB: true },
      { a: [256, 96], b: [96, 80], tA: false, tB: false },
      { a: [96, 256], b: [96, 80], tA: true, tB: false },
    ];
    for (const c of cases) {
      await initBackend({ backend: 'cpu', fastPaths: false });
      const reference = productAndGrads(referenceProduct, c.a, c.b, c.tA, c.tB);
      await initBackend({ backend: 'wasm' });
      expectClose(productAndGrads((a, b, tA, tB) => tf.matMul(a, b, tA, tB), c.a, c.b, c.tA, c.tB), reference, `[${c.a}] x [${c.b}]`);
    }
  });

  it('keeps tfjs errors for mismatched inner dimensions and handles empty and int32 operands like tfjs', async () => {
    await initBackend({ backend: 'wasm' });
    expect(() => tf.matMul(tf.ones([2, 3, 4]), tf.ones([2, 5, 6]))).toThrow(/inner shapes \(4\) and \(5\)/);
    const empty = tf.matMul(tf.ones([2, 0, 4]), tf.ones([2, 4, 3]));
    expect(empty.shape).toEqual([2, 0, 3]);
    const zeroInner = tf.matMul(tf.ones([2, 3, 0]), tf.ones([2, 0, 2]));
    expect(Array.from(zeroInner.dataSync())).toEqual(new Array(12).fill(0));
    tf.dispose([empty, zeroInner]);
  });

  it('leaves no tensors or wasm buffers behind, forward and backward', async () => {
    await initBackend({ backend: 'wasm' });
    const a = tf.tensor(values([3, 8, 16], 4), [3, 8, 16]);
    const b = tf.tensor(values([3, 8, 16], 5), [3, 8, 16]);
    const run = () => {
      const g = tf.grads((x: tf.Tensor, z: tf.Tensor) => tf.sum(tf.matMul(x, z, false, true)))([a, b]);
      tf.dispose(g);
    };
    run();
    const tensors = tf.memory().numTensors;
    const buffers = tf.engine().backend.numDataIds();
    run();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(tf.engine().backend.numDataIds()).toBe(buffers);
    tf.dispose([a, b]);
  });

  it('is switched off (and tfjs restored) by fastPaths: false, and back on by default', async () => {
    const report = await initBackend({ backend: 'wasm', fastPaths: false });
    expect(report.fastPaths).toEqual([]);
    const tfjsKernel = tf.getKernel('BatchMatMul', 'wasm')!.kernelFunc;
    const tfjsGradient = tf.getGradient('BatchMatMul')!;
    const on = await initBackend({ backend: 'wasm' });
    expect(on.fastPaths).toEqual(expect.arrayContaining(['matmul-gradient', 'wasm-batch-matmul']));
    expect(tf.getKernel('BatchMatMul', 'wasm')!.kernelFunc).not.toBe(tfjsKernel);
    expect(tf.getGradient('BatchMatMul')).not.toBe(tfjsGradient);
    await initBackend({ backend: 'wasm', fastPaths: false });
    expect(tf.getKernel('BatchMatMul', 'wasm')!.kernelFunc).toBe(tfjsKernel);
    expect(tf.getGradient('BatchMatMul')).toBe(tfjsGradient);
    await initBackend({ backend: 'wasm' });
  });
});
