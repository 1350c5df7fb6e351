/**
 * Data-movement kernels for wasm without wasted copies. tfjs-backend-wasm's Identity copies the whole tensor (the
 * engine clones every tensor a gradient saves, so training copies each activation once more); its Slice first
 * copies the entire input out of the heap (`readSync`) and then copies rows with one `subarray().set()` per row;
 * SplitV runs that Slice once per piece and Concat allocates a subarray per row. Here Identity shares the data
 * (as Reshape, and the cpu backend's Identity, do; tensors are immutable) and rows move with copyWithin inside
 * the wasm heap (no copies out of it, no allocation per row). Pure data movement: bit-for-bit tfjs's results.
 */
import * as tf from '@tensorflow/tfjs';

/** The parts of tfjs-backend-wasm's BackendWasm used here (checked before install by wasmHeapAccessible). */
interface WasmHeapBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  incRef(dataId: object): void;
}

export function wasmHeapAccessible(backend: unknown): boolean {
  const b = backend as Partial<WasmHeapBackend> | null;
  return !!b && b.wasm?.HEAPU8 instanceof Uint8Array && typeof b.dataIdMap?.get === 'function' && typeof b.makeOutput === 'function';
}

const BYTES: Partial<Record<tf.DataType, number>> = { float32: 4, int32: 4, bool: 1 };

/** Byte offset of a tensor's data in the heap. */
function offsetOf(backend: WasmHeapBackend, info: tf.TensorInfo): number {
  return backend.dataIdMap.get(info.dataId)!.memoryOffset;
}

export function makeAliasIdentity(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (x.dtype === 'string') return original(args);
    (args.backend as unknown as WasmHeapBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
  };
}

/**
 * Copies the box begin..begin+size of the tensor at byte `src` (shape `shape`, `bytes` per element) to byte `dst`,
 * row-major.
 */
function copyBox(heap: Uint8Array, src: number, shape: number[], begin: number[], size: number[], dst: number, bytes: number): void {
  const rank = shape.length;
  const strides = tf.util.computeStrides(shape);
  // The innermost contiguous run: the last axis, extended over trailing axes taken whole.
  let runAxis = rank - 1;
  let run = size[rank - 1]!;
  while (runAxis > 0 && size[runAxis] === shape[runAxis]) {
    runAxis--;
    run *= size[runAxis]!;
  }
  const outer = size.slice(0, runAxis);
  const runStart = begin[runAxis]! * (strides[runAxis] ?? 1); // axes after runAxis are whole: they begin at 0
  const count = outer.reduce((a, b) => a * b, 1);
  const index = new Array<number>(outer.length).fill(0);
  const runBytes = run * bytes;
  let to = dst;
  for (let n = 0; n < count; n++) {
    let from = runStart;
    for (let d = 0; d < outer.length; d++) from += (begin[d]! + index[d]!) * strides[d]!;
    heap.copyWithin(to, src + from * bytes, src + from * bytes + runBytes);
    to += runBytes;
    for (let d = outer.length - 1; d >= 0; d--) {
      if (++index[d]! < outer[d]!) break;
      index[d] = 0;
    }
  }
}

function sliceInto(x: tf.TensorInfo, begin: number[], size: number[], backend: WasmHeapBackend): tf.TensorInfo {
  const out = backend.makeOutput(size, x.dtype);
  if (size.some((d) => d === 0)) return out;
  // The heap is read after the allocation, which may grow (and so replace) it.
  const heap = backend.wasm.HEAPU8;
  const bytes = BYTES[x.dtype]!;
  if (x.shape.length === 0) heap.copyWithin(offsetOf(backend, out), offsetOf(backend, x), offsetOf(backend, x) + bytes);
  else copyBox(heap, offsetOf(backend, x), x.shape, begin, size, offsetOf(backend, out), bytes);
  return out;
}

export function makeHeapSlice(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (BYTES[x.dtype] === undefined) return original(args);
    const { begin, size } = args.attrs as unknown as { begin: number | number[]; size: number | number[] };
    const [begin_, size_] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
    return sliceInto(x, begin_, size_, args.backend as unknown as WasmHeapBackend);
  };
}

export function makeHeapSplitV(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    if (BYTES[x.dtype] === undefined) return original(args);
    const { numOrSizeSplits, axis } = args.attrs as unknown as { numOrSizeSplits: number | number[]; axis: number };
    const $axis = tf.util.parseAxisParam(axis, x.shape)[0]!;
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, $axis);
    const begin = new Array<number>(x.shape.length).fill(0);
    return sizes.map((s) => {
      const size = x.shape.slice();
      size[$axis] = s;
      const piece = sliceInto(x, begin.slice(), size, args.backend as unknown as WasmHeapBackend);
      begin[$axis]! += s;
      return piece;
    });
  };
}

export function makeHeapConcat(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const inputs = args.inputs as unknown as tf.TensorInfo[];
    const nonEmpty = inputs.filter((t) => t.shape.every((d) => d > 0));
    if (inputs.length === 0 || BYTES[inputs[0]!.dtype] === undefined || nonEmpty.length < 2) return original(args);
    const axis = tf.util.parseAxisParam((args.attrs as unknown as { axis: number }).axis, inputs[0]!.shape)[0]!;
    tf.backend_util.assertParamsConsistent(inputs.map((t) => t.shape), axis);
    const backend = args.backend as unknown as WasmHeapBackend;
    const out = backend.makeOutput(tf.backend_util.computeOutShape(inputs.map((t) => t.shape), axis), inputs[0]!.dtype);
    const outer = inputs[0]!.shape.slice(0, axis).reduce((a, b) => a * b, 1);
    const widths = nonEmpty.map((t) => t.shape.slice(axis).reduce((a, b) => a * b, 1));
    const total = widths.reduce((a, b) => a + b, 0);
    const bytes = BYTES[inputs[0]!.dtype]!;
    const heap = backend.wasm.HEAPU8; // after the allocation
    const outStart = offsetOf(backend, out);
    let column = 0;
    for (let i = 0; i < nonEmpty.length; i++) {
      const rowBytes = widths[i]! * bytes;
      let from = offsetOf(backend, nonEmpty[i]!);
      let to = outStart + column * bytes;
      for (let row = 0; row < outer; row++, from += rowBytes, to += total * bytes) heap.copyWithin(to, from, from + rowBytes);
      column += widths[i]!;
    }
    return out;
  };
}
