/**
 * Matrix transposes on wasm without cache-set aliasing. tfjs-backend-wasm's Transpose writes a 2-D transpose
 * column by column: with a power-of-two row count (1024 tokens, 256 features) every write of a column lands in
 * the same cache set and it runs at 8-11 ns per element, 3-9x slower than the same data moved in 64-row panels
 * (a [1024,688] activation: 7 ms instead of 0.8 ms). Training transposes every linear layer's input and weight
 * for the gradients, so this kernel splits the rows into panels of 64, [R, C] -> [R/64, 64, C], and lets wasm's
 * own kernel move the panels ([2, 0, 1]), which is the same element order as [C, R]. Pure data movement: results
 * are bit-for-bit tfjs's.
 */
import * as tf from '@tensorflow/tfjs';

/** Rows per panel: small enough that a panel's writes stay in cache, the best of 16..256 measured. */
export const TRANSPOSE_PANEL_ROWS = 64;

/** Below this many elements the plain kernel is as fast (the data fits in cache). */
const MIN_ELEMENTS = 16384;

/** Whether `perm` keeps the leading axes and swaps the last two ([0, .., r-3, r-1, r-2]). */
function swapsLastTwo(perm: readonly number[]): boolean {
  const rank = perm.length;
  if (rank < 2 || perm[rank - 2] !== rank - 1 || perm[rank - 1] !== rank - 2) return false;
  for (let i = 0; i < rank - 2; i++) if (perm[i] !== i) return false;
  return true;
}

export function makePanelTranspose(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { perm } = args.attrs as unknown as { perm: number[] };
    if (x.dtype === 'string' || !swapsLastTwo(perm)) return original(args);
    const rank = x.shape.length;
    const rows = x.shape[rank - 2]!;
    const cols = x.shape[rank - 1]!;
    const batch = x.shape.slice(0, -2).reduce((a, b) => a * b, 1);
    const panels = rows / TRANSPOSE_PANEL_ROWS;
    // Only a single matrix: batched slices with short rows are already fast (under 2 ns per element).
    if (batch !== 1 || !Number.isInteger(panels) || panels < 2 || cols < 2 || rows * cols < MIN_ELEMENTS) return original(args);
    const panelled: tf.TensorInfo = { dataId: x.dataId, shape: [panels, TRANSPOSE_PANEL_ROWS, cols], dtype: x.dtype };
    const out = original({ ...args, inputs: { x: panelled }, attrs: { perm: [2, 0, 1] } }) as tf.TensorInfo;
    // [C, R/64, 64] in row-major order is [C, R]: only the shape changes.
    out.shape = [...x.shape.slice(0, -2), cols, rows];
    return out;
  };
}
