// Test-only speed fix: a one-pass UnsortedSegmentSum (the gradient of tf.gather) for the cpu and wasm backends.
// tfjs's cpu kernel, which core's wasm fill-in delegates to, launches several kernels per segment, and the
// causal-LM loss's gather over the flat [B*T*V] logits has B*T*V segments: ~70% of a tiny training step here.
// The results are the same sums; only the learning checks install it, to stay fast. It belongs in core.
import * as tf from '@tensorflow/tfjs';

interface Storage {
  readSync(dataId: object): tf.TypedArray;
  makeTensorInfo?(shape: number[], dtype: tf.DataType, values: tf.TypedArray): tf.TensorInfo;
  makeOutput?(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap?(info: tf.TensorInfo): tf.TypedArray;
}

function segmentSum({ inputs, backend, attrs }: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const storage = backend as Storage;
  const x = inputs.x!;
  const ids = inputs.segmentIds!;
  const numSegments = (attrs as { numSegments: number }).numSegments;
  const values = storage.readSync(x.dataId);
  const segments = storage.readSync(ids.dataId);
  const inner = x.shape.slice(1).reduce((a, b) => a * b, 1);
  const shape = [numSegments, ...x.shape.slice(1)];
  const out = new Float32Array(numSegments * inner);
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (s < 0 || s >= numSegments) continue;
    const from = i * inner;
    const to = s * inner;
    for (let j = 0; j < inner; j++) out[to + j]! += values[from + j]!;
  }
  if (storage.makeOutput && storage.typedArrayFromHeap) {
    const info = storage.makeOutput(shape, 'float32');
    storage.typedArrayFromHeap(info).set(out);
    return info;
  }
  return storage.makeTensorInfo!(shape, 'float32', out);
}

/** Replaces UnsortedSegmentSum on the active backend (float inputs only, as the gather gradient produces). */
export function installFastSegmentSum(): void {
  const backendName = tf.getBackend();
  if (tf.getKernel('UnsortedSegmentSum', backendName)) tf.unregisterKernel('UnsortedSegmentSum', backendName);
  tf.registerKernel({ kernelName: 'UnsortedSegmentSum', backendName, kernelFunc: segmentSum as unknown as tf.KernelFunc });
}
