/**
 * UnsortedSegmentSum (the gradient of gather: every embedding table, and a loss that gathers target logits) in
 * one pass over the input. tfjs's cpu kernel (which the wasm fill-in delegates to) loops over the segments and
 * masks the whole input for each, O(segments x input) with several allocations per segment: a [B*T*V]-segment
 * gather gradient of a language-model loss takes minutes. This kernel accumulates in float64 in input order, as
 * the cpu kernel's sum does, so results are bit-for-bit the cpu kernel's, down to its float32 output for int32
 * input (it multiplies by a float mask).
 */
import * as tf from '@tensorflow/tfjs';

/** The wasm and cpu backends' own methods for reading inputs and making an output. */
interface WasmStorage {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): tf.TypedArray;
}

interface CpuStorage {
  readSync(dataId: object): tf.TypedArray | string[];
  makeTensorInfo(shape: number[], dtype: tf.DataType, values?: tf.TypedArray): tf.TensorInfo;
}

interface SegmentSumAttrs {
  numSegments: number;
}

function checkInputs(x: tf.TensorInfo, segmentIds: tf.TensorInfo): number {
  const prefix = segmentIds.shape;
  if (prefix.length > x.shape.length || prefix.some((d, i) => d !== x.shape[i])) {
    throw new Error(
      `unsortedSegmentSum: segmentIds of shape [${prefix}] must be a prefix of x's shape [${x.shape}]; ` +
        'give one segment id per leading element of x',
    );
  }
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new Error(`unsortedSegmentSum: x must be float32 or int32, got ${x.dtype}; cast it first`);
  }
  return x.shape.slice(prefix.length).reduce((a, b) => a * b, 1);
}

/** Sums rows of `values` (each `inner` long) into out[segment]; ids outside [0, numSegments) are dropped. */
function accumulate(values: ArrayLike<number>, ids: ArrayLike<number>, inner: number, numSegments: number): Float64Array {
  const sums = new Float64Array(numSegments * inner);
  for (let row = 0; row < ids.length; row++) {
    const segment = ids[row]!;
    if (!(segment >= 0 && segment < numSegments)) continue;
    const source = row * inner;
    const target = segment * inner;
    for (let j = 0; j < inner; j++) sums[target + j] += values[source + j]!;
  }
  return sums;
}

function outputShape(x: tf.TensorInfo, segmentIds: tf.TensorInfo, numSegments: number): number[] {
  return [numSegments, ...x.shape.slice(segmentIds.shape.length)];
}

export const segmentSumWasmKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const { numSegments } = attrs as unknown as SegmentSumAttrs;
  const inner = checkInputs(x, segmentIds);
  const wasm = backend as unknown as WasmStorage;
  // Heap views, read before the output allocation (which may grow the heap and detach them).
  const sums = accumulate(wasm.typedArrayFromHeap(x), wasm.typedArrayFromHeap(segmentIds), inner, numSegments);
  const out = wasm.makeOutput(outputShape(x, segmentIds, numSegments), 'float32');
  wasm.typedArrayFromHeap(out).set(sums);
  return out;
};

export const segmentSumCpuKernel: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const { numSegments } = attrs as unknown as SegmentSumAttrs;
  const inner = checkInputs(x, segmentIds);
  const cpu = backend as unknown as CpuStorage;
  const sums = accumulate(cpu.readSync(x.dataId) as tf.TypedArray, cpu.readSync(segmentIds.dataId) as tf.TypedArray, inner, numSegments);
  return cpu.makeTensorInfo(outputShape(x, segmentIds, numSegments), 'float32', Float32Array.from(sums));
};
