/**
 * A linear-time UnsortedSegmentSum kernel for the wasm and cpu backends: a workaround that belongs in core.
 *
 * Why: the gradient of `tf.gather` is UnsortedSegmentSum. tfjs's cpu kernel (which core's wasm fill-in delegates
 * to) loops over the segments and runs equal / cast / multiply / sum over the whole input for each one, so it
 * costs O(numSegments x N) plus five kernel launches per segment. causalLMLoss gathers the target logit from the
 * flat [B * T * V] logits, so its backward pass has B * T * V segments: 34560 for a batch of 64 x 18 tokens over a
 * 30-token vocabulary took ~4.7 s per call on this machine, 95% of a training step. This kernel is one pass.
 * Remove it once @chimera/core's fill-in (and a cpu override) do the same.
 */
import * as tf from '@tensorflow/tfjs';

interface BackendStorage {
  readSync(dataId: object): tf.TypedArray | string[];
  /** wasm: allocate an output on the wasm heap. */
  makeOutput?(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap?(info: tf.TensorInfo): tf.TypedArray;
  /** cpu: wrap values as an output. */
  makeTensorInfo?(shape: number[], dtype: tf.DataType, values: tf.TypedArray): tf.TensorInfo;
}

/** out[segmentIds[i], ...] += x[i, ...]; ids outside [0, numSegments) are dropped, as in TensorFlow. */
function unsortedSegmentSum({ inputs, backend, attrs }: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const storage = backend as BackendStorage;
  const x = inputs.x!;
  const ids = inputs.segmentIds!;
  const numSegments = (attrs as { numSegments: number }).numSegments;
  const values = storage.readSync(x.dataId) as tf.TypedArray;
  const segmentIds = storage.readSync(ids.dataId) as tf.TypedArray;
  const rows = segmentIds.length;
  const inner = rows === 0 ? 0 : values.length / rows;
  const shape = [numSegments, ...x.shape.slice(ids.shape.length)];
  const sums = x.dtype === 'int32' ? new Int32Array(numSegments * inner) : new Float32Array(numSegments * inner);
  for (let row = 0; row < rows; row++) {
    const segment = segmentIds[row]!;
    if (segment < 0 || segment >= numSegments) continue;
    const from = row * inner;
    const to = segment * inner;
    for (let k = 0; k < inner; k++) sums[to + k] += values[from + k]!;
  }
  if (storage.makeOutput && storage.typedArrayFromHeap) {
    const out = storage.makeOutput(shape, x.dtype);
    storage.typedArrayFromHeap(out).set(sums);
    return out;
  }
  return storage.makeTensorInfo!(shape, x.dtype, sums);
}

/** Replaces UnsortedSegmentSum on the active backend (wasm or cpu) with the linear-time kernel; returns whether it did. */
export function installLinearSegmentSum(): boolean {
  const backendName = tf.getBackend();
  if (backendName !== 'wasm' && backendName !== 'cpu') return false;
  if (tf.getKernel('UnsortedSegmentSum', backendName)) tf.unregisterKernel('UnsortedSegmentSum', backendName);
  tf.registerKernel({ kernelName: 'UnsortedSegmentSum', backendName, kernelFunc: unsortedSegmentSum as tf.KernelFunc });
  return true;
}
