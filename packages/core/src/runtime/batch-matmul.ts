/**
 * BatchMatMul on wasm at the 2-D (XNNPACK) rate. tfjs-backend-wasm 4.x sends a matmul to XNNPACK only when
 * neither transpose flag is set and both operands have batch size 1; everything else runs a naive blocked
 * triple loop that is 10-20x slower (a [2,2048,64] @ [2,64,1024] product: 1 s instead of 0.05 s). This kernel
 * transposes flagged operands explicitly (wasm's own Transpose kernel), folds a batch that shares one right-hand
 * matrix into the rows (one XNNPACK call), and otherwise calls XNNPACK once per batch slice on zero-copy views:
 * slice tensors registered with the wasm module at offsets inside the operands' and output's memory.
 */
import * as tf from '@tensorflow/tfjs';

/** The parts of tfjs-backend-wasm's BackendWasm this kernel uses (stable across 4.x; checked at install). */
interface WasmBackendInternals {
  wasm: {
    cwrap(name: string, returnType: null, argTypes: string[]): (...args: unknown[]) => void;
    tfjs: {
      registerTensor(id: number, size: number, memoryOffset: number): void;
      disposeData(id: number): void;
    };
  };
  dataIdMap: { get(dataId: object): { id: number; memoryOffset: number } | undefined };
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
}

type NativeMatMul = (
  aId: number,
  aShape: Uint8Array,
  aRank: number,
  bId: number,
  bShape: Uint8Array,
  bRank: number,
  transposeA: boolean,
  transposeB: boolean,
  outId: number,
) => void;

const nativeByModule = new WeakMap<object, NativeMatMul>();

/** Whether `backend` exposes what this kernel needs; if not, the fast path is not installed. */
export function wasmBackendSupportsSlicedMatMul(backend: unknown): boolean {
  const b = backend as Partial<WasmBackendInternals> | null;
  return (
    !!b &&
    typeof b.wasm?.cwrap === 'function' &&
    typeof b.wasm.tfjs?.registerTensor === 'function' &&
    typeof b.wasm.tfjs.disposeData === 'function' &&
    typeof b.dataIdMap?.get === 'function' &&
    typeof b.dataIdNextNumber === 'number' &&
    typeof b.makeOutput === 'function'
  );
}

function nativeMatMul(backend: WasmBackendInternals): NativeMatMul {
  let fn = nativeByModule.get(backend.wasm);
  if (!fn) {
    const argTypes = ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number'];
    fn = backend.wasm.cwrap('BatchMatMul', null, argTypes) as unknown as NativeMatMul;
    nativeByModule.set(backend.wasm, fn);
  }
  return fn;
}

const shapeBytes = (shape: number[]) => new Uint8Array(new Int32Array(shape).buffer);
const product = (dims: number[]) => dims.reduce((a, b) => a * b, 1);

/**
 * Row-major [batch, rows, cols] data for an operand given as [..., r, c] (flagged: transposed explicitly).
 * Returns the tensor to read and whether it is a temporary to dispose.
 */
function rowMajor(
  x: tf.TensorInfo,
  transposed: boolean,
  backend: WasmBackendInternals,
  transposeKernel: tf.KernelFunc,
): { info: tf.TensorInfo; temporary: boolean } {
  if (!transposed) return { info: x, temporary: false };
  const rank = x.shape.length;
  const batch = product(x.shape.slice(0, -2));
  const as3d: tf.TensorInfo = { dataId: x.dataId, shape: [batch, x.shape[rank - 2]!, x.shape[rank - 1]!], dtype: x.dtype };
  const info = transposeKernel({ inputs: { x: as3d }, backend: backend as never, attrs: { perm: [0, 2, 1] } }) as tf.TensorInfo;
  return { info, temporary: true };
}

/** Index of the operand's batch slice for output batch index `flat`, following broadcasting of the outer dims. */
function sliceIndexer(outer: number[], outOuter: number[]): (flat: number) => number {
  const padded = [...new Array(outOuter.length - outer.length).fill(1), ...outer] as number[];
  if (padded.every((d, i) => d === outOuter[i])) return (flat) => flat;
  return (flat) => {
    let index = 0;
    let stride = 1;
    let rest = flat;
    for (let axis = outOuter.length - 1; axis >= 0; axis--) {
      const coord = rest % outOuter[axis]!;
      rest = Math.floor(rest / outOuter[axis]!);
      if (padded[axis] !== 1) index += coord * stride;
      stride *= padded[axis]!;
    }
    return index;
  };
}

/**
 * Builds the kernel. `original` (wasm's own BatchMatMul) still serves non-float32 inputs and empty shapes, so
 * errors and edge cases stay tfjs's.
 */
export function makeSlicedBatchMatMul(original: tf.KernelFunc, transposeKernel: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    const backend = args.backend as unknown as WasmBackendInternals;
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return original(args);
    const aRank = a.shape.length;
    const bRank = b.shape.length;
    const rows = transposeA ? a.shape[aRank - 1]! : a.shape[aRank - 2]!;
    const inner = transposeA ? a.shape[aRank - 2]! : a.shape[aRank - 1]!;
    const innerB = transposeB ? b.shape[bRank - 1]! : b.shape[bRank - 2]!;
    const cols = transposeB ? b.shape[bRank - 2]! : b.shape[bRank - 1]!;
    const aOuter = a.shape.slice(0, -2);
    const bOuter = b.shape.slice(0, -2);
    if (inner !== innerB) return original(args); // tfjs's own error message
    const outOuter = tf.broadcast_util.assertAndGetBroadcastShape(aOuter, bOuter);
    const batch = product(outOuter);
    if (rows === 0 || cols === 0 || inner === 0 || batch === 0) return original(args);

    const aBatch = product(aOuter);
    const bBatch = product(bOuter);
    const left = rowMajor(a, transposeA, backend, transposeKernel);
    const right = rowMajor(b, transposeB, backend, transposeKernel);
    const out = backend.makeOutput([...outOuter, rows, cols], 'float32');
    const native = nativeMatMul(backend);
    const idOf = (info: tf.TensorInfo) => backend.dataIdMap.get(info.dataId)!.id;
    try {
      if (bBatch === 1) {
        // Every slice multiplies the same matrix: stack the slices' rows into one 2-D product.
        native(
          idOf(left.info), shapeBytes([1, aBatch * rows, inner]), 3,
          idOf(right.info), shapeBytes([1, inner, cols]), 3,
          false, false, idOf(out),
        );
      } else {
        const aSlice = sliceIndexer(aOuter, outOuter);
        const bSlice = sliceIndexer(bOuter, outOuter);
        const aBase = backend.dataIdMap.get(left.info.dataId)!.memoryOffset;
        const bBase = backend.dataIdMap.get(right.info.dataId)!.memoryOffset;
        const outBase = backend.dataIdMap.get(out.dataId)!.memoryOffset;
        const views: number[] = [];
        const view = (memoryOffset: number, size: number) => {
          const id = backend.dataIdNextNumber++;
          backend.wasm.tfjs.registerTensor(id, size, memoryOffset);
          views.push(id);
          return id;
        };
        // One view per distinct right-hand slice: XNNPACK packs (and caches) the right operand per tensor id.
        const rightViews = new Map<number, number>();
        const aShape = shapeBytes([1, rows, inner]);
        const bShape = shapeBytes([1, inner, cols]);
        try {
          for (let i = 0; i < batch; i++) {
            const ai = aSlice(i);
            const bi = bSlice(i);
            let rightId = rightViews.get(bi);
            if (rightId === undefined) {
              rightId = view(bBase + bi * inner * cols * 4, inner * cols);
              rightViews.set(bi, rightId);
            }
            const leftId = view(aBase + ai * rows * inner * 4, rows * inner);
            const outId = view(outBase + i * rows * cols * 4, rows * cols);
            native(leftId, aShape, 3, rightId, bShape, 3, false, false, outId);
          }
        } finally {
          // Disposing a view drops XNNPACK's cached operator for it; the memory belongs to the real tensors.
          for (const id of views) backend.wasm.tfjs.disposeData(id);
        }
      }
    } finally {
      if (left.temporary) backend.disposeData(left.info.dataId);
      if (right.temporary) backend.disposeData(right.info.dataId);
    }
    return out;
  };
}
