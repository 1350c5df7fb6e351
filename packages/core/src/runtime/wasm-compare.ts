/**
 * Comparison kernels (Equal, NotEqual, Less, LessEqual, Greater, GreaterEqual) for wasm with fast broadcasting
 * (operands of equal shapes still go to tfjs's kernel, which is fast for them).
 * tfjs-backend-wasm's comparisons take ~250 ns per element when one side broadcasts (the gradient of max, and
 * so of logSumExp and every cross-entropy, compares [B, T, V] with [B, T, 1]: 80-130 ms per call); a JS loop over
 * heap views takes under 10 ns. Comparisons are exact, so results are bit-for-bit.
 */
import * as tf from '@tensorflow/tfjs';

interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): tf.TypedArray;
}

/** The kernels replaced, and the operation code of each (see compareRow). */
export const COMPARISONS: Record<string, number> = { Equal: 0, NotEqual: 1, Less: 2, LessEqual: 3, Greater: 4, GreaterEqual: 5 };

/**
 * out[o + j] = a[ai + j * aStep] OP b[bi + j * bStep] for j < n. One loop per operation with the comparison
 * inline: a comparison passed as a function makes the call site polymorphic once two kernels have run, and the
 * loop then runs 3-5x slower.
 */
function compareRow(op: number, a: tf.TypedArray, ai: number, aStep: number, b: tf.TypedArray, bi: number, bStep: number, out: tf.TypedArray, o: number, n: number): void {
  switch (op) {
    case 0:
      for (let j = 0; j < n; j++, ai += aStep, bi += bStep) out[o + j] = a[ai]! === b[bi]! ? 1 : 0;
      return;
    case 1:
      for (let j = 0; j < n; j++, ai += aStep, bi += bStep) out[o + j] = a[ai]! !== b[bi]! ? 1 : 0;
      return;
    case 2:
      for (let j = 0; j < n; j++, ai += aStep, bi += bStep) out[o + j] = a[ai]! < b[bi]! ? 1 : 0;
      return;
    case 3:
      for (let j = 0; j < n; j++, ai += aStep, bi += bStep) out[o + j] = a[ai]! <= b[bi]! ? 1 : 0;
      return;
    case 4:
      for (let j = 0; j < n; j++, ai += aStep, bi += bStep) out[o + j] = a[ai]! > b[bi]! ? 1 : 0;
      return;
    default:
      for (let j = 0; j < n; j++, ai += aStep, bi += bStep) out[o + j] = a[ai]! >= b[bi]! ? 1 : 0;
  }
}

/** Per-axis strides of `shape` read at the broadcast `outShape` (0 along broadcast axes). */
function broadcastStrides(shape: number[], outShape: number[]): number[] {
  const rank = outShape.length;
  const padded = [...new Array<number>(rank - shape.length).fill(1), ...shape];
  const strides = new Array<number>(rank).fill(0);
  let stride = 1;
  for (let axis = rank - 1; axis >= 0; axis--) {
    strides[axis] = padded[axis] === 1 ? 0 : stride;
    stride *= padded[axis]!;
  }
  return strides;
}

export function makeBroadcastCompare(kernelName: string, original: tf.KernelFunc): tf.KernelFunc {
  const op = COMPARISONS[kernelName]!;
  return (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    if (a.dtype === 'string' || b.dtype === 'string' || a.dtype === 'complex64' || a.dtype !== b.dtype) return original(args);
    // Without broadcasting tfjs's own kernel is fast.
    if (a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i])) return original(args);
    const outShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const backend = args.backend as unknown as WasmHeapBackend;
    const out = backend.makeOutput(outShape, 'bool');
    const size = outShape.reduce((x, y) => x * y, 1);
    if (size === 0) return out;
    const av = backend.typedArrayFromHeap(a);
    const bv = backend.typedArrayFromHeap(b);
    const ov = backend.typedArrayFromHeap(out);
    const rank = outShape.length; // >= 1: equal shapes (scalars included) went to tfjs's kernel
    const aStrides = broadcastStrides(a.shape, outShape);
    const bStrides = broadcastStrides(b.shape, outShape);
    const inner = outShape[rank - 1]!;
    const aStep = aStrides[rank - 1]!;
    const bStep = bStrides[rank - 1]!;
    const index = new Array<number>(rank - 1).fill(0);
    let aRow = 0;
    let bRow = 0;
    for (let o = 0; o < size; o += inner) {
      compareRow(op, av, aRow, aStep, bv, bRow, bStep, ov, o, inner);
      // Advance the outer index (odometer) and the two row offsets.
      for (let d = rank - 2; d >= 0; d--) {
        index[d]!++;
        aRow += aStrides[d]!;
        bRow += bStrides[d]!;
        if (index[d]! < outShape[d]!) break;
        aRow -= aStrides[d]! * outShape[d]!;
        bRow -= bStrides[d]! * outShape[d]!;
        index[d] = 0;
      }
    }
    return out;
  };
}
