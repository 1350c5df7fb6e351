/**
 * Convolution gradients on wasm at XNNPACK's rate. tfjs-backend-wasm 4.x has no Conv2DBackpropFilter (the fill-in
 * ran tfjs's pure-JS cpu kernel on copies: 0.02 GFLOP/s, ~700x below the matmul rate) and computes
 * Conv2DBackpropInput with a naive C++ loop (~2 GFLOP/s, 10x below it). Here, NHWC as in TensorFlow:
 *
 * - filter gradient: dW [kH*kW*in, out] = colsT [kH*kW*in, M] @ dy [M, out] (M = batch * output pixels) on
 *   XNNPACK's plain 2-D matmul. The packed (right-hand) operand is dy, the small one: XNNPACK runs a product whose
 *   packed operand is large and whose left operand has few rows at ~1 GFLOP/s. x is first made channel-major and
 *   split by stride phase, so the operand is built from contiguous runs (copyWithin), never element by element. On
 *   small images colsT is the transposed patch matrix (im2col: Chellapilla et al. 2006, "High Performance
 *   Convolutional Neural Networks for Document Processing"; Caffe), built in chunks of output rows. On large ones
 *   the kH*kW copies of x cost more than they save, so each tap's rows are a view into one padded copy of x, shifted
 *   by the tap's offset, against dy laid on the same padded grid (zeros where a view reads padding): one matmul per
 *   tap, no patch matrix;
 * - input gradient (also tf.conv2dTranspose's forward pass): the sub-pixel decomposition of a transposed
 *   convolution (Shi et al. 2016, "Is the deconvolution layer the same as a convolutional layer?"): one stride-1
 *   convolution per stride phase on wasm's own XNNPACK Conv2D kernel, with that phase's taps rotated 180 degrees and
 *   their channel axes swapped. No multiplication by inserted zeros, no col2im; stride 1 is a single convolution
 *   whose output is dx.
 *
 * These sum in float32 in XNNPACK's order where the cpu kernels sum in float64: equal within float32 rounding (1e-5 relative),
 * not bit for bit. The depthwise gradients have little arithmetic (no channel mixing): they are JS loops over heap
 * views that accumulate in float64 in the cpu kernels' order, so they are bit for bit the cpu kernels' results.
 * NCHW, non-float32 inputs, dilations above 1 (which tfjs's gradients refuse) and degenerate shapes go to the
 * kernel being replaced (the cpu fill-in, or wasm's own), so errors and edge cases stay tfjs's.
 */
import * as tf from '@tensorflow/tfjs';

/** The parts of tfjs-backend-wasm's BackendWasm used here (checked before install by wasmConvAccessible). */
interface WasmConvBackend {
  wasm: {
    HEAPF32: Float32Array;
    wasmMemory?: { buffer: ArrayBufferLike };
    cwrap(name: string, returnType: null, argTypes: string[]): (...args: unknown[]) => void;
    tfjs: { registerTensor(id: number, size: number, memoryOffset: number): void; disposeData(id: number): void };
  };
  dataIdMap: { get(dataId: object): { id: number; memoryOffset: number } | undefined };
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
}

/**
 * The heap as floats, read after any allocation (an allocation may grow, and so replace, the heap). With wasm threads
 * the memory is shared and a growth made on another thread leaves this thread's view short until it is rebuilt.
 */
function heapF32(backend: WasmConvBackend): Float32Array {
  const memory = backend.wasm.wasmMemory;
  const heap = backend.wasm.HEAPF32;
  return memory && heap.buffer !== memory.buffer ? new Float32Array(memory.buffer) : heap;
}

export function wasmConvAccessible(backend: unknown): boolean {
  const b = backend as Partial<WasmConvBackend> | null;
  return (
    !!b &&
    b.wasm?.HEAPF32 instanceof Float32Array &&
    typeof b.wasm.cwrap === 'function' &&
    typeof b.wasm.tfjs?.registerTensor === 'function' &&
    typeof b.wasm.tfjs.disposeData === 'function' &&
    typeof b.dataIdMap?.get === 'function' &&
    typeof b.dataIdNextNumber === 'number' &&
    typeof b.makeOutput === 'function' &&
    typeof b.disposeData === 'function'
  );
}

/**
 * Largest transposed patch matrix built at once, in floats (16 MiB): big enough that XNNPACK runs at its full rate,
 * small enough that a large image does not grow the wasm heap (which never shrinks) by the whole patch matrix.
 */
export const CHUNK_FLOATS = 1 << 22;
let chunkFloats = CHUNK_FLOATS;

/** Sets the chunk size (tests use a small one to cover the chunked paths); returns the previous one. Internal. */
export function setConvChunkFloats(floats: number = CHUNK_FLOATS): number {
  const previous = chunkFloats;
  chunkFloats = Math.max(1, Math.floor(floats));
  return previous;
}

type NativeMatMul = (aId: number, aShape: Uint8Array, aRank: number, bId: number, bShape: Uint8Array, bRank: number, transposeA: boolean, transposeB: boolean, outId: number) => void;
type NativeTranspose = (xId: number, xShape: Uint8Array, xRank: number, dtype: number, outId: number, perm: Uint8Array, permRank: number) => void;
type NativePad = (xId: number, xShape: Uint8Array, xRank: number, dtype: number, before: Uint8Array, after: Uint8Array, value: number, outId: number) => void;
interface Natives {
  matMul: NativeMatMul;
  transpose: NativeTranspose;
  pad: NativePad;
}

const natives = new WeakMap<object, Natives>();

/** wasm's own BatchMatMul (XNNPACK for unflagged batch-1 operands), Transpose and PadV2, called by tensor id. */
function nativesOf(backend: WasmConvBackend): Natives {
  let fns = natives.get(backend.wasm);
  if (!fns) {
    fns = {
      matMul: backend.wasm.cwrap('BatchMatMul', null, ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number']) as unknown as NativeMatMul,
      transpose: backend.wasm.cwrap('Transpose', null, ['number', 'array', 'number', 'number', 'number', 'array', 'number']) as unknown as NativeTranspose,
      pad: backend.wasm.cwrap('PadV2', null, ['number', 'array', 'number', 'number', 'array', 'array', 'number', 'number']) as unknown as NativePad,
    };
    natives.set(backend.wasm, fns);
  }
  return fns;
}

const int32Bytes = (values: number[]) => new Uint8Array(new Int32Array(values).buffer);

/** A float32 scratch tensor on the wasm heap, with its tfjs-wasm id and its offset in HEAPF32 (in floats). */
interface Scratch {
  info: tf.TensorInfo;
  id: number;
  at: number;
}

function scratch(backend: WasmConvBackend, shape: number[]): Scratch {
  const info = backend.makeOutput(shape, 'float32');
  const entry = backend.dataIdMap.get(info.dataId)!;
  return { info, id: entry.id, at: entry.memoryOffset >> 2 };
}

function located(backend: WasmConvBackend, info: tf.TensorInfo): { id: number; at: number } {
  const entry = backend.dataIdMap.get(info.dataId)!;
  return { id: entry.id, at: entry.memoryOffset >> 2 };
}

/** out [m, n] = a [m, k] @ b [k, n] on XNNPACK (unflagged batch-1 operands: its fast path). */
function matMul(backend: WasmConvBackend, aId: number, bId: number, outId: number, m: number, k: number, n: number): void {
  nativesOf(backend).matMul(aId, int32Bytes([1, m, k]), 3, bId, int32Bytes([1, k, n]), 3, false, false, outId);
}

/**
 * out [cols, rows] = transpose of x [rows, cols]. Rows in 64-row panels where they divide evenly: wasm's 2-D
 * transpose writes a column at a time and, with power-of-two row counts, every write of a column hits the same cache
 * set (see wasm-transpose.ts); [R/64, 64, C] -> [C, R/64, 64] is the same element order without the aliasing.
 */
function transpose2d(backend: WasmConvBackend, xId: number, outId: number, rows: number, cols: number): void {
  const { transpose } = nativesOf(backend);
  if (rows % 64 === 0 && rows >= 128) transpose(xId, int32Bytes([rows / 64, 64, cols]), 3, 0, outId, int32Bytes([2, 0, 1]), 3);
  else transpose(xId, int32Bytes([rows, cols]), 2, 0, outId, int32Bytes([1, 0]), 2);
}

/** Registers a view id over `size` floats at HEAPF32 offset `at` (a fresh id: XNNPACK caches packed operands by id). */
interface ViewRegistry {
  view(at: number, size: number): number;
  disposeAll(): void;
}

function viewRegistry(backend: WasmConvBackend): ViewRegistry {
  const ids: number[] = [];
  return {
    view(at, size) {
      const id = backend.dataIdNextNumber++;
      backend.wasm.tfjs.registerTensor(id, size, at * 4);
      ids.push(id);
      return id;
    },
    disposeAll() {
      // Disposing a view drops XNNPACK's operator cached for it; the memory belongs to the real tensors.
      for (const id of ids.splice(0)) backend.wasm.tfjs.disposeData(id);
    },
  };
}

/** The geometry every kernel here needs, from tfjs's own conv info (so padding rules are tfjs's). */
interface Geometry {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  outH: number;
  outW: number;
  outC: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  dilationH: number;
  dilationW: number;
  padTop: number;
  padLeft: number;
  padBottom: number;
  padRight: number;
}

function geometry(info: tf.backend_util.Conv2DInfo): Geometry {
  return {
    batch: info.batchSize,
    inH: info.inHeight,
    inW: info.inWidth,
    inC: info.inChannels,
    outH: info.outHeight,
    outW: info.outWidth,
    outC: info.outChannels,
    kH: info.filterHeight,
    kW: info.filterWidth,
    strideH: info.strideHeight,
    strideW: info.strideWidth,
    dilationH: info.dilationHeight,
    dilationW: info.dilationWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
    padBottom: info.padInfo.bottom,
    padRight: info.padInfo.right,
  };
}

const isEmpty = (g: Geometry) => [g.batch, g.inH, g.inW, g.inC, g.outH, g.outW, g.outC, g.kH, g.kW].some((d) => d <= 0);

/**
 * x rearranged for im2colTransposed: channel-major and split by stride phase,
 * xP[c, pw, ph, b, i, j] = x[b, i*ph + (row phase), j*pw + (column phase), c], so that the pixels one tap reads for
 * consecutive output columns (and, at stride 1 or with row phases, rows) are consecutive. A stride splits its axis
 * into phases only when it divides the size; otherwise that axis keeps one phase and is gathered with a step.
 */
interface Phased {
  scratch: Scratch;
  ph: number;
  pw: number;
}

function phasedInput(backend: WasmConvBackend, x: tf.TensorInfo, g: Geometry): Phased {
  const { batch, inH, inW, inC } = g;
  const ph = g.strideH > 1 && inH % g.strideH === 0 ? g.strideH : 1;
  const pw = g.strideW > 1 && inW % g.strideW === 0 ? g.strideW : 1;
  const out = scratch(backend, [inC, batch * inH * inW]);
  const xId = located(backend, x).id;
  if (ph === 1 && pw === 1) {
    transpose2d(backend, xId, out.id, batch * inH * inW, inC);
    return { scratch: out, ph, pw };
  }
  let source = xId;
  let rowsFirst: Scratch | null = null;
  try {
    if (ph > 1) {
      // [B*Hp, ph, W*C] -> [ph, B*Hp, W*C]: whole image rows move, one copy each.
      rowsFirst = scratch(backend, [batch * inH * inW * inC]);
      const heap = heapF32(backend);
      const from = located(backend, x).at;
      const row = inW * inC;
      const groups = (batch * inH) / ph;
      for (let q = 0; q < groups; q++) for (let r = 0; r < ph; r++) heap.copyWithin(rowsFirst.at + (r * groups + q) * row, from + (q * ph + r) * row, from + (q * ph + r + 1) * row);
      source = rowsFirst.id;
    }
    // [ph*B*Hp, Wp, pw, C] -> [C, pw, ph*B*Hp, Wp]
    nativesOf(backend).transpose(source, int32Bytes([batch * inH, inW / pw, pw, inC]), 4, 0, out.id, int32Bytes([3, 2, 0, 1]), 4);
  } finally {
    if (rowsFirst) backend.disposeData(rowsFirst.info.dataId);
  }
  return { scratch: out, ph, pw };
}

/**
 * The transposed patch matrix of output lines line0..line0+count-1 (a line is one output row (b, oh)): row
 * (kh, kw, c) of colsT [kH*kW*in, count*oW], column (line - line0)*oW + ow, holds
 * x[b, oh*sH - padTop + kh*dH, ow*sW - padLeft + kw*dW, c], zero where that is padding, read from phasedInput's
 * layout. Each line of a row is one contiguous run, and when the phases' width equals the output width, all the
 * lines of one image are (plus a zero at each line's padded edges).
 */
function im2colTransposed(heap: Float32Array, xp: { at: number; ph: number; pw: number }, g: Geometry, line0: number, count: number, colsAt: number): void {
  const { batch, inH, inW, inC, outH, outW, kH, kW, strideH, strideW, dilationH, dilationW, padTop, padLeft } = g;
  const { ph, pw } = xp;
  const rowsP = inH / ph;
  const colsP = inW / pw;
  const plane = rowsP * colsP;
  const stepH = strideH / ph; // rows of a phase per output row: 1, or sH when the rows are not split
  const stepW = strideW / pw;
  const columns = count * outW;
  const merged = stepH === 1 && stepW === 1 && colsP === outW;
  for (let kh = 0; kh < kH; kh++) {
    const ih0 = kh * dilationH - padTop; // ih = oh * strideH + ih0
    const rowPhase = ((ih0 % ph) + ph) % ph;
    const di = (ih0 - rowPhase) / ph; // phase row = oh * stepH + di
    const ohFirst = Math.max(0, Math.ceil(-ih0 / strideH)); // output rows whose input row exists
    const ohEnd = Math.max(ohFirst, Math.min(outH, Math.floor((inH - 1 - ih0) / strideH) + 1));
    for (let kw = 0; kw < kW; kw++) {
      const iw0 = kw * dilationW - padLeft; // iw = ow * strideW + iw0
      const colPhase = ((iw0 % pw) + pw) % pw;
      const dj = (iw0 - colPhase) / pw; // phase column = ow * stepW + dj
      const owLo = Math.min(outW, Math.max(0, Math.ceil(-iw0 / strideW)));
      const owHi = Math.max(owLo, Math.min(outW, Math.floor((inW - 1 - iw0) / strideW) + 1));
      for (let c = 0; c < inC; c++) {
        const row = colsAt + ((kh * kW + kw) * inC + c) * columns;
        const base = xp.at + ((c * pw + colPhase) * ph + rowPhase) * batch * plane + dj;
        let line = line0;
        while (line < line0 + count) {
          const b = Math.floor(line / outH);
          const oh = line - b * outH;
          const dst = row + (line - line0) * outW;
          const image = base + b * plane;
          if (merged) {
            const end = Math.min(line0 + count, (b + 1) * outH) - b * outH; // oh bound of this image in the chunk
            const ohLo = Math.min(end, Math.max(oh, ohFirst));
            const ohHi = Math.max(ohLo, Math.min(end, ohEnd));
            zero(heap, dst, dst + (ohLo - oh) * outW);
            zero(heap, dst + (ohHi - oh) * outW, dst + (end - oh) * outW);
            if (ohHi > ohLo && owHi > owLo) {
              const first = dst + (ohLo - oh) * outW;
              const src = image + (ohLo + di) * colsP;
              const length = (ohHi - ohLo - 1) * outW + owHi - owLo;
              heap.copyWithin(first + owLo, src + owLo, src + owLo + length);
              // Padded columns got their neighbour row's pixels: zero them.
              if (owLo > 0 || owHi < outW) {
                for (let at = first; at < first + (ohHi - ohLo) * outW; at += outW) {
                  for (let ow = 0; ow < owLo; ow++) heap[at + ow] = 0;
                  for (let ow = owHi; ow < outW; ow++) heap[at + ow] = 0;
                }
              }
            } else {
              zero(heap, dst + (ohLo - oh) * outW, dst + (ohHi - oh) * outW);
            }
            line = b * outH + end;
            continue;
          }
          line++;
          if (oh < ohFirst || oh >= ohEnd) {
            zero(heap, dst, dst + outW);
            continue;
          }
          zero(heap, dst, dst + owLo);
          zero(heap, dst + owHi, dst + outW);
          const src = image + (oh * stepH + di) * colsP;
          if (stepW === 1) copyRun(heap, dst + owLo, src + owLo, owHi - owLo);
          else for (let ow = owLo; ow < owHi; ow++) heap[dst + ow] = heap[src + ow * stepW]!;
        }
      }
    }
  }
}

/** heap[from..to) = 0; a loop for short ranges, where the call costs more than the writes. */
function zero(heap: Float32Array, from: number, to: number): void {
  if (to - from >= 32) heap.fill(0, from, to);
  else for (let i = from; i < to; i++) heap[i] = 0;
}

/** copyWithin for long runs; a loop for short ones, where the call costs more than the copy. */
function copyRun(heap: Float32Array, to: number, from: number, length: number): void {
  if (length >= 32) heap.copyWithin(to, from, from + length);
  else for (let i = 0; i < length; i++) heap[to + i] = heap[from + i]!;
}

interface Conv2DBackpropFilterAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape: [number, number, number, number];
}

/** Conv2DBackpropFilter: dW [kH, kW, in, out] from x [B, H, W, in] and dy [B, oH, oW, out]. */
export function makeConv2DBackpropFilter(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const { strides, pad, dataFormat, dimRoundingMode, filterShape } = args.attrs as unknown as Conv2DBackpropFilterAttrs;
    if (x.dtype !== 'float32' || dy.dtype !== 'float32' || x.shape.length !== 4 || dy.shape.length !== 4) return original(args);
    if (tf.backend_util.convertConv2DDataFormat(dataFormat) !== 'channelsLast') return original(args);
    const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode, false, 'channelsLast');
    const g = geometry(info);
    if (isEmpty(g) || info.outShape.some((d, i) => d !== dy.shape[i])) return original(args);
    const backend = args.backend as unknown as WasmConvBackend;
    const dW = scratch(backend, [g.kH * g.kW * g.inC, g.outC]);
    try {
      const useViews = filterMethod === 'auto' ? g.inC >= VIEW_MIN_CHANNELS && g.batch * g.outH * g.outW >= VIEW_MIN_POSITIONS : filterMethod === 'views';
      if (useViews) filterViaShiftedViews(backend, x, dy, g, dW);
      else filterViaPatchMatrix(backend, x, dy, g, dW);
      return { dataId: dW.info.dataId, shape: filterShape.slice(), dtype: 'float32' };
    } catch (error) {
      backend.disposeData(dW.info.dataId);
      throw error;
    }
  };
}

/**
 * When the filter gradient uses shifted views (one matmul per tap, each with `in` rows) rather than the patch matrix
 * (one matmul with kH*kW*in rows): the patch matrix costs kH*kW copies of the input, the views cost matmuls with
 * fewer rows, which XNNPACK runs more slowly. Measured on the conv stack's and Whisper's layers (bench/conv.ts shapes,
 * 2 wasm threads, one noisy run): views 1.3-1.9x faster on 32x32 and 64x64 images at batch 8 and on Whisper's 3000
 * frames, about even at 2048 positions, 1.1-1.3x slower at 512 positions and below.
 */
export const VIEW_MIN_CHANNELS = 8;
export const VIEW_MIN_POSITIONS = 2048;
let filterMethod: 'auto' | 'views' | 'patches' = 'auto';

/** Forces one filter-gradient method (tests cover both on every case); returns the previous setting. Internal. */
export function setConvFilterMethod(method: 'auto' | 'views' | 'patches' = 'auto'): 'auto' | 'views' | 'patches' {
  const previous = filterMethod;
  filterMethod = method;
  return previous;
}

/**
 * dW [kH*kW*in, out] = colsT [kH*kW*in, M] @ dy [M, out] (M = batch * output pixels), in chunks of whole output rows.
 * The packed (right) operand is the small one, dy: XNNPACK runs a product whose packed operand is large and whose left
 * operand has few rows at ~1 GFLOP/s.
 */
function filterViaPatchMatrix(backend: WasmConvBackend, x: tf.TensorInfo, dy: tf.TensorInfo, g: Geometry, dW: Scratch): void {
  const k = g.kH * g.kW * g.inC;
  const n = g.outC;
  const lines = g.batch * g.outH; // output rows (b, oh); a chunk is whole lines
  const linesPerChunk = Math.max(1, Math.min(lines, Math.floor(chunkFloats / (k * g.outW))));
  const phased = phasedInput(backend, x, g);
  const xp = { at: phased.scratch.at, ph: phased.ph, pw: phased.pw };
  const colsT = scratch(backend, [k, linesPerChunk * g.outW]);
  const part = linesPerChunk < lines ? scratch(backend, [k, n]) : null;
  const views = viewRegistry(backend);
  try {
    const dyAt = located(backend, dy).at;
    for (let line0 = 0; line0 < lines; line0 += linesPerChunk) {
      const count = Math.min(linesPerChunk, lines - line0);
      const columns = count * g.outW;
      im2colTransposed(heapF32(backend), xp, g, line0, count, colsT.at);
      // A fresh id for dy's rows: XNNPACK caches the packed operand by id.
      const dyChunk = views.view(dyAt + line0 * g.outW * n, columns * n);
      matMul(backend, colsT.id, dyChunk, line0 === 0 ? dW.id : part!.id, k, columns, n);
      if (line0 > 0) {
        const heap = heapF32(backend);
        for (let i = 0; i < k * n; i++) heap[dW.at + i] += heap[part!.at + i]!;
      }
      views.disposeAll();
    }
  } finally {
    views.disposeAll();
    backend.disposeData(phased.scratch.info.dataId);
    backend.disposeData(colsT.info.dataId);
    if (part) backend.disposeData(part.info.dataId);
  }
}

/**
 * dW[kh, kw] [in, out] = A_tap [in, P] @ dyPad [P, out], one XNNPACK matmul per tap, all against the same packed dy.
 * The positions run over a grid of Rp x Qp per image, the output pixels plus room for the furthest tap; dyPad is dy
 * on that grid, zero outside the output pixels. x is laid out once per stride phase on the same grid, channel-major
 * (xPh[phase, c, b, i, j] = x[b, i*sH + ph - padTop, j*sW + pw - padLeft, c], zero in the padding), so that every
 * tap's operand A_tap is a view of xPh at the tap's phase and offset: row c, position (b, i, j) reads
 * x[b, (i + kh*dH div sH)*sH + ..] exactly for the output pixels, and finite values that meet dyPad's zeros elsewhere.
 * No patch matrix: x is copied about once instead of kH*kW times.
 */
function filterViaShiftedViews(backend: WasmConvBackend, x: tf.TensorInfo, dy: tf.TensorInfo, g: Geometry, dW: Scratch): void {
  const { batch, inH, inW, inC, outH, outW, outC, kH, kW, strideH, strideW, dilationH, dilationW, padTop, padLeft } = g;
  const rowsP = outH + Math.floor(((kH - 1) * dilationH) / strideH);
  const colsP = outW + Math.floor(((kW - 1) * dilationW) / strideW);
  const positions = batch * rowsP * colsP;
  const phasePlane = inC * positions;
  const margin = Math.floor(((kH - 1) * dilationH) / strideH) * colsP + Math.floor(((kW - 1) * dilationW) / strideW);
  const xPh = scratch(backend, [strideH * strideW * phasePlane + margin]);
  const dyPad = scratch(backend, [positions, outC]);
  const views = viewRegistry(backend);
  let padded: Scratch | null = null;
  let phased: Phased | null = null;
  try {
    // At stride 1 the grid is x zero-padded (rowsP = padTop + H + padBottom): wasm's own pad, then a transpose to
    // channel-major. Otherwise each stride phase is gathered from x split by phase.
    if (strideH === 1 && strideW === 1 && rowsP >= inH + padTop && colsP >= inW + padLeft) {
      padded = scratch(backend, [batch, rowsP, colsP, inC]);
      nativesOf(backend).pad(
        located(backend, x).id, int32Bytes([batch, inH, inW, inC]), 4, 0,
        int32Bytes([0, padTop, padLeft, 0]), int32Bytes([0, rowsP - inH - padTop, colsP - inW - padLeft, 0]), 0, padded.id,
      );
      transpose2d(backend, padded.id, xPh.id, positions, inC);
    } else {
      phased = phasedInput(backend, x, g);
      const xp = { at: phased.scratch.at, ph: phased.ph, pw: phased.pw };
      for (let ph = 0; ph < strideH; ph++) {
        for (let pw = 0; pw < strideW; pw++) {
          const phaseGeometry: Geometry = { ...g, kH: 1, kW: 1, dilationH: 1, dilationW: 1, padTop: padTop - ph, padLeft: padLeft - pw, outH: rowsP, outW: colsP };
          im2colTransposed(heapF32(backend), xp, phaseGeometry, 0, batch * rowsP, xPh.at + (ph * strideW + pw) * phasePlane);
        }
      }
    }
    const heap = heapF32(backend);
    // Every phase is written (zeros where unused), and the margin zeroed: views read past their rows, into the next
    // phase or the margin, at positions where dyPad is zero, and 0 * NaN from uninitialised memory would not be zero.
    heap.fill(0, xPh.at + strideH * strideW * phasePlane, xPh.at + strideH * strideW * phasePlane + margin);
    // dy on the grid.
    const dyAt = located(backend, dy).at;
    const rowFloats = outW * outC;
    for (let b = 0; b < batch; b++) {
      const image = dyPad.at + b * rowsP * colsP * outC;
      if (colsP === outW) {
        heap.copyWithin(image, dyAt + b * outH * rowFloats, dyAt + (b + 1) * outH * rowFloats);
      } else {
        for (let i = 0; i < outH; i++) {
          const to = image + i * colsP * outC;
          heap.copyWithin(to, dyAt + (b * outH + i) * rowFloats, dyAt + (b * outH + i + 1) * rowFloats);
          heap.fill(0, to + rowFloats, to + colsP * outC);
        }
      }
      heap.fill(0, image + outH * colsP * outC, image + rowsP * colsP * outC);
    }
    for (let kh = 0; kh < kH; kh++) {
      const rowPhase = (kh * dilationH) % strideH;
      const rowShift = Math.floor((kh * dilationH) / strideH);
      for (let kw = 0; kw < kW; kw++) {
        const colPhase = (kw * dilationW) % strideW;
        const colShift = Math.floor((kw * dilationW) / strideW);
        const a = views.view(xPh.at + (rowPhase * strideW + colPhase) * phasePlane + rowShift * colsP + colShift, phasePlane);
        const out = views.view(dW.at + (kh * kW + kw) * inC * outC, inC * outC);
        // dyPad keeps its id over the taps: XNNPACK packs it once.
        matMul(backend, a, dyPad.id, out, inC, positions, outC);
      }
    }
  } finally {
    views.disposeAll();
    for (const t of [xPh, dyPad, padded, phased?.scratch]) if (t) backend.disposeData(t.info.dataId);
  }
}

interface Conv2DBackpropInputAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  inputShape: [number, number, number, number];
}

/**
 * Conv2DBackpropInput: dx [B, H, W, in] from dy [B, oH, oW, out] and the filter [kH, kW, in, out]. This is also
 * tf.conv2dTranspose's forward pass. `conv` is wasm's Conv2D kernel (XNNPACK) as registered when the fast path is
 * installed; it is called directly, so a kernel profile counts its time under Conv2DBackpropInput only.
 */
export function makeConv2DBackpropInput(original: tf.KernelFunc, conv: tf.KernelFunc | undefined): tf.KernelFunc {
  return (args) => {
    const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
    const { strides, pad, dataFormat, dimRoundingMode, inputShape } = args.attrs as unknown as Conv2DBackpropInputAttrs;
    if (dy.dtype !== 'float32' || filter.dtype !== 'float32' || dy.shape.length !== 4 || filter.shape.length !== 4) return original(args);
    if (tf.backend_util.convertConv2DDataFormat(dataFormat) !== 'channelsLast') return original(args);
    const info = tf.backend_util.computeConv2DInfo(inputShape, filter.shape as [number, number, number, number], strides, 1, pad, dimRoundingMode, false, 'channelsLast');
    const g = geometry(info);
    if (isEmpty(g) || info.outShape.some((d, i) => d !== dy.shape[i])) return original(args);
    const backend = args.backend as unknown as WasmConvBackend;
    return conv ? viaPhaseConvolutions(backend, dy, filter, g, conv) : original(args);
  };
}

/** One axis of a stride phase: which taps reach the dx positions r, r + s, r + 2s, ... and how to convolve for them. */
interface PhaseAxis {
  /** First tap of the phase (taps first, first + s, ...) and how many there are. */
  first: number;
  taps: number;
  /** dx positions in the phase. */
  size: number;
  /** Zero padding of dy before and after for the stride-1 convolution, and its leading outputs to skip. */
  before: number;
  after: number;
  skip: number;
}

function phaseAxis(r: number, pad: number, stride: number, kernel: number, inSize: number, outSize: number): PhaseAxis {
  // dx position r + s*i receives dy[(r + s*i + pad - k) / s] * W[k] for every k = r + pad (mod s).
  const first = (r + pad) % stride;
  const taps = first < kernel ? Math.ceil((kernel - first) / stride) : 0;
  const size = Math.ceil((inSize - r) / stride);
  // With the phase's taps reversed (t' = taps-1-t), phase position i reads dy[i + offset + t'].
  const offset = Math.floor((r + pad) / stride) - taps + 1;
  const before = Math.max(0, -offset);
  const skip = Math.max(0, offset);
  const after = Math.max(0, skip + size - (outSize + before - taps + 1));
  return { first, taps, size, before, after, skip };
}

/**
 * dx as sH*sW stride-1 convolutions on wasm's own (XNNPACK) Conv2D kernel, one per stride phase (the sub-pixel
 * decomposition of a transposed convolution, Shi et al. 2016, "Is the deconvolution layer the same as a
 * convolutional layer?"): the dx positions ih = rh (mod sH), iw = rw (mod sW) only receive the taps
 * kh = rh + padTop (mod sH), kw = rw + padLeft (mod sW), so each phase is a correlation of dy with those taps
 * rotated 180 degrees and their channel axes swapped. Stride 1 is one phase: the "full" correlation with the
 * rotated filter, whose output is dx itself. No tap is multiplied by an inserted zero.
 */
function viaPhaseConvolutions(backend: WasmConvBackend, dy: tf.TensorInfo, filter: tf.TensorInfo, g: Geometry, conv: tf.KernelFunc): tf.TensorInfo {
  const { batch, inH, inW, inC, outH, outW, outC, kW, strideH, strideW } = g;
  let dx: Scratch | null = null;
  try {
    for (let rh = 0; rh < strideH && rh < inH; rh++) {
      const rows = phaseAxis(rh, g.padTop, strideH, g.kH, inH, outH);
      for (let rw = 0; rw < strideW && rw < inW; rw++) {
        const cols = phaseAxis(rw, g.padLeft, strideW, kW, inW, outW);
        const whole = strideH === 1 && strideW === 1 && rows.skip === 0 && cols.skip === 0;
        if (!whole && !dx) dx = scratch(backend, [batch, inH, inW, inC]);
        if (rows.taps === 0 || cols.taps === 0) {
          fillPhase(heapF32(backend), dx!.at, g, rh, rw, rows, cols, null, 0, 0);
          continue;
        }
        const phaseFilter = scratch(backend, [rows.taps, cols.taps, outC, inC]);
        let out: tf.TensorInfo;
        try {
          const heap = heapF32(backend);
          const w = located(backend, filter).at;
          for (let th = 0; th < rows.taps; th++) {
            const kh = rows.first + strideH * (rows.taps - 1 - th);
            for (let tw = 0; tw < cols.taps; tw++) {
              const kw = cols.first + strideW * (cols.taps - 1 - tw);
              const from = w + (kh * kW + kw) * inC * outC;
              const to = phaseFilter.at + (th * cols.taps + tw) * outC * inC;
              for (let ci = 0; ci < inC; ci++) for (let co = 0; co < outC; co++) heap[to + co * inC + ci] = heap[from + ci * outC + co]!;
            }
          }
          out = conv({
            inputs: { x: dy, filter: phaseFilter.info },
            backend: backend as never,
            attrs: { strides: [1, 1], pad: [[0, 0], [rows.before, rows.after], [cols.before, cols.after], [0, 0]], dataFormat: 'NHWC', dilations: [1, 1] },
          }) as tf.TensorInfo;
        } finally {
          backend.disposeData(phaseFilter.info.dataId);
        }
        if (whole && out.shape[1] === inH && out.shape[2] === inW) return out;
        if (!dx) dx = scratch(backend, [batch, inH, inW, inC]);
        try {
          fillPhase(heapF32(backend), dx.at, g, rh, rw, rows, cols, located(backend, out).at, out.shape[1]!, out.shape[2]!);
        } finally {
          backend.disposeData(out.dataId);
        }
      }
    }
    return dx!.info;
  } catch (error) {
    if (dx) backend.disposeData(dx.info.dataId);
    throw error;
  }
}

/** Writes one stride phase of dx from a phase convolution's output [B, outRows, outCols, in] (zeros when null). */
function fillPhase(heap: Float32Array, dxAt: number, g: Geometry, rh: number, rw: number, rows: PhaseAxis, cols: PhaseAxis, outAt: number | null, outRows: number, outCols: number): void {
  const { batch, inH, inW, inC, strideH, strideW } = g;
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < rows.size; i++) {
      const dxRow = dxAt + ((b * inH + rh + strideH * i) * inW + rw) * inC;
      if (outAt === null) {
        for (let j = 0; j < cols.size; j++) zero(heap, dxRow + strideW * j * inC, dxRow + (strideW * j + 1) * inC);
        continue;
      }
      const outRow = outAt + ((b * outRows + rows.skip + i) * outCols + cols.skip) * inC;
      if (strideW === 1) copyRun(heap, dxRow, outRow, cols.size * inC);
      else for (let j = 0; j < cols.size; j++) copyRun(heap, dxRow + strideW * j * inC, outRow + j * inC, inC);
    }
  }
}

interface DepthwiseBackpropAttrs {
  strides: number | [number, number];
  dilations: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape?: [number, number, number, number];
  inputShape?: [number, number, number, number];
}

const isOne = (v: number | [number, number] | undefined) => v === undefined || (typeof v === 'number' ? v === 1 : v.every((d) => d === 1));

/**
 * DepthwiseConv2dNativeBackpropFilter: dW [kH, kW, in, mult] from x [B, H, W, in] and dy [B, oH, oW, in*mult],
 * summed in float64 over (b, oh, ow) in order, as the cpu kernel does: bit for bit its result.
 */
export function makeDepthwiseBackpropFilter(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const { strides, dilations, pad, dimRoundingMode, filterShape } = args.attrs as unknown as DepthwiseBackpropAttrs;
    // The cpu kernel ignores dilations in its loops; tfjs's gradient refuses them. Keep its behaviour there.
    if (x.dtype !== 'float32' || dy.dtype !== 'float32' || x.shape.length !== 4 || dy.shape.length !== 4 || !filterShape || !isOne(dilations)) return original(args);
    const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode, true);
    const g = geometry(info);
    if (isEmpty(g) || info.outShape.some((d, i) => d !== dy.shape[i])) return original(args);
    const backend = args.backend as unknown as WasmConvBackend;
    const { batch, inH, inW, inC, outH, outW, outC, kH, kW, strideH, strideW, padTop, padLeft } = g;
    const mult = outC / inC;
    const acc = new Float64Array(kH * kW * outC);
    const heap = heapF32(backend);
    const xAt = located(backend, x).at;
    const dyAt = located(backend, dy).at;
    for (let b = 0; b < batch; b++) {
      for (let oh = 0; oh < outH; oh++) {
        for (let ow = 0; ow < outW; ow++) {
          const dyRow = dyAt + ((b * outH + oh) * outW + ow) * outC;
          for (let kh = 0; kh < kH; kh++) {
            const ih = oh * strideH - padTop + kh;
            if (ih < 0 || ih >= inH) continue;
            for (let kw = 0; kw < kW; kw++) {
              const iw = ow * strideW - padLeft + kw;
              if (iw < 0 || iw >= inW) continue;
              const xRow = xAt + ((b * inH + ih) * inW + iw) * inC;
              const a = (kh * kW + kw) * outC;
              if (mult === 1) {
                for (let c = 0; c < inC; c++) acc[a + c] += heap[xRow + c]! * heap[dyRow + c]!;
              } else {
                for (let c = 0; c < inC; c++) {
                  const xv = heap[xRow + c]!;
                  for (let q = c * mult; q < (c + 1) * mult; q++) acc[a + q] += xv * heap[dyRow + q]!;
                }
              }
            }
          }
        }
      }
    }
    const out = scratch(backend, filterShape.slice());
    heapF32(backend).set(acc, out.at); // rounds each float64 sum to float32 once, as the cpu kernel's buffer does
    return out.info;
  };
}

/**
 * DepthwiseConv2dNativeBackpropInput: dx [B, H, W, in] from dy [B, oH, oW, in*mult] and the filter [kH, kW, in,
 * mult], each element summed in float64 over (oh, ow, mult) in the cpu kernel's order: bit for bit its result.
 */
export function makeDepthwiseBackpropInput(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
    const { strides, dilations, pad, dimRoundingMode, inputShape } = args.attrs as unknown as DepthwiseBackpropAttrs;
    if (dy.dtype !== 'float32' || filter.dtype !== 'float32' || dy.shape.length !== 4 || filter.shape.length !== 4 || !inputShape || !isOne(dilations)) return original(args);
    const info = tf.backend_util.computeConv2DInfo(inputShape, filter.shape as [number, number, number, number], strides, 1, pad, dimRoundingMode, true);
    const g = geometry(info);
    if (isEmpty(g) || info.outShape.some((d, i) => d !== dy.shape[i])) return original(args);
    const backend = args.backend as unknown as WasmConvBackend;
    const { batch, inH, inW, inC, outH, outW, outC, kH, kW, strideH, strideW, padTop, padLeft } = g;
    const mult = outC / inC;
    const out = scratch(backend, inputShape.slice());
    const heap = heapF32(backend); // after the allocation, which may grow the heap
    const dyAt = located(backend, dy).at;
    const wAt = located(backend, filter).at;
    const acc = new Float64Array(inC);
    for (let b = 0; b < batch; b++) {
      for (let ih = 0; ih < inH; ih++) {
        // Output rows whose taps reach ih: ih = oh*s - padTop + kh with 0 <= kh < kH, ascending oh.
        const ohMin = Math.max(0, Math.ceil((ih + padTop - kH + 1) / strideH));
        const ohMax = Math.min(outH - 1, Math.floor((ih + padTop) / strideH));
        for (let iw = 0; iw < inW; iw++) {
          const owMin = Math.max(0, Math.ceil((iw + padLeft - kW + 1) / strideW));
          const owMax = Math.min(outW - 1, Math.floor((iw + padLeft) / strideW));
          acc.fill(0);
          for (let oh = ohMin; oh <= ohMax; oh++) {
            const kh = ih + padTop - oh * strideH;
            for (let ow = owMin; ow <= owMax; ow++) {
              const kw = iw + padLeft - ow * strideW;
              const dyRow = dyAt + ((b * outH + oh) * outW + ow) * outC;
              const wRow = wAt + (kh * kW + kw) * outC;
              if (mult === 1) {
                for (let c = 0; c < inC; c++) acc[c] += heap[dyRow + c]! * heap[wRow + c]!;
              } else {
                for (let c = 0; c < inC; c++) {
                  let sum = acc[c]!;
                  for (let q = c * mult; q < (c + 1) * mult; q++) sum += heap[dyRow + q]! * heap[wRow + q]!;
                  acc[c] = sum;
                }
              }
            }
          }
          heap.set(acc, out.at + ((b * inH + ih) * inW + iw) * inC);
        }
      }
    }
    return out.info;
  };
}
