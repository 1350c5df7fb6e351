/**
 * Token-count reduction by merging neighbouring patches into one wider token:
 * - the k x k concat merge of Qwen2-VL's patch merger (Wang et al. 2024): [rows, cols, D] ->
 *   [rows/k, cols/k, k*k*D], each window's k*k features concatenated row-major (top-left, top-right,
 *   bottom-left, bottom-right for k = 2), ready for the merger's MLP (left to fusion);
 * - pixel shuffle (Chen et al. 2024, InternVL 1.5; NVLM-D uses it too) with scale 1/k. Its 'v2' form gives
 *   exactly the concat merge's layout; the legacy 'v1' form (early InternVL checkpoints) leaves the output
 *   grid transposed: [cols/k, rows/k, k*k*D].
 *
 * Odd grids: with `oddGrid: 'pad'` the grid is padded with zero features at the bottom and right up to a
 * multiple of k (so the last row/column of windows holds fewer real patches); the default 'error' refuses.
 */
import * as tf from '@tensorflow/tfjs';

/** Grids not divisible by the merge factor: refuse ('error') or zero-pad at the bottom/right ('pad'). */
export type OddGridPolicy = 'error' | 'pad';

/** Options of {@link mergePatches} and {@link mergedGridShape}. */
export interface MergeOptions {
  /** Window side k (default 2: 2x2 patches -> one token). */
  factor?: number;
  /** Grids not divisible by k: refuse (default) or zero-pad at the bottom/right. */
  oddGrid?: OddGridPolicy;
}

/** Options of {@link pixelShuffle} and {@link pixelShuffleGridShape}. */
export interface PixelShuffleOptions {
  /** Output resolution scale, 1/k (default 0.5, InternVL's downsample_ratio). */
  scale?: number;
  /** InternVL's ps_version: 'v2' (default) or the legacy transposed 'v1'. */
  version?: 'v1' | 'v2';
  /** Grids not divisible by 1/scale: refuse (default) or zero-pad. */
  oddGrid?: OddGridPolicy;
}

/** A grid of patches or tokens. */
export interface GridShape {
  /** Rows. */
  rows: number;
  /** Columns. */
  cols: number;
}

function checkFactor(factor: number): void {
  if (!Number.isInteger(factor) || factor < 1) {
    throw new Error(`mergePatches: factor must be an integer >= 1, got ${factor}`);
  }
}

/** The grid after a k x k merge (padding odd grids up when `oddGrid` is 'pad'). */
export function mergedGridShape(grid: GridShape, options: MergeOptions = {}): GridShape {
  const factor = options.factor ?? 2;
  checkFactor(factor);
  if ((grid.rows % factor !== 0 || grid.cols % factor !== 0) && (options.oddGrid ?? 'error') === 'error') {
    throw new Error(
      `mergePatches: a ${grid.rows}x${grid.cols} patch grid is not divisible by the ${factor}x${factor} merge window; ` +
        `pick an input size whose patch grid is a multiple of ${factor}, or pass oddGrid: 'pad'`,
    );
  }
  return { rows: Math.ceil(grid.rows / factor), cols: Math.ceil(grid.cols / factor) };
}

/**
 * k x k concat merge. x: [rows, cols, D] or [B, rows, cols, D] -> [rows/k, cols/k, k*k*D] (or batched). The
 * channel order of a merged token is (dy, dx, d): patch (k*i + dy, k*j + dx) fills channels
 * [(dy*k + dx)*D, (dy*k + dx + 1)*D).
 */
export function mergePatches<T extends tf.Tensor3D | tf.Tensor4D>(x: T, options: MergeOptions = {}): T {
  const factor = options.factor ?? 2;
  if (x.rank !== 3 && x.rank !== 4) {
    throw new Error(`mergePatches: expected [rows, cols, D] or [B, rows, cols, D], got shape [${x.shape}]`);
  }
  const batched = x.rank === 4;
  const [batch, rows, cols, dim] = batched ? x.shape : [1, ...x.shape];
  const merged = mergedGridShape({ rows: rows!, cols: cols! }, options);
  if (factor === 1) return tf.clone(x);
  return tf.tidy(() => {
    let grid = batched ? (x as tf.Tensor4D) : (tf.expandDims(x, 0) as tf.Tensor4D);
    const padRows = merged.rows * factor - rows!;
    const padCols = merged.cols * factor - cols!;
    if (padRows > 0 || padCols > 0) grid = tf.pad(grid, [[0, 0], [0, padRows], [0, padCols], [0, 0]]);
    // Rows of windows: a window row's k patches of one image row are contiguous (k*D channels), so
    // [B*rows/k, k, cols/k, k*D] -> swap the middle axes -> [B*rows/k, cols/k, k, k*D] -> flatten the window.
    const split = tf.reshape(grid, [batch! * merged.rows, factor, merged.cols, factor * dim!]);
    const windows = tf.transpose(split, [0, 2, 1, 3]);
    const shape: [number, number, number] = [merged.rows, merged.cols, factor * factor * dim!];
    return (batched ? tf.reshape(windows, [batch!, ...shape]) : tf.reshape(windows, shape)) as T;
  });
}

/**
 * InternVL's pixel shuffle with scale 1/k. x: [rows, cols, D] or [B, rows, cols, D] -> [rows/k, cols/k, k*k*D]
 * ('v2') or [cols/k, rows/k, k*k*D] ('v1'). Channel order as mergePatches.
 */
export function pixelShuffle<T extends tf.Tensor3D | tf.Tensor4D>(x: T, options: PixelShuffleOptions = {}): T {
  const scale = options.scale ?? 0.5;
  const factor = Math.round(1 / scale);
  if (!(scale > 0) || Math.abs(factor * scale - 1) > 1e-9) {
    throw new Error(`pixelShuffle: scale must be 1/k for an integer k >= 1 (e.g. 0.5), got ${scale}`);
  }
  const merged = mergePatches(x, { factor, oddGrid: options.oddGrid });
  if ((options.version ?? 'v2') === 'v2') return merged;
  const transposed = tf.transpose(merged, x.rank === 4 ? [0, 2, 1, 3] : [1, 0, 2]) as T;
  merged.dispose();
  return transposed;
}

/** The grid pixel shuffle produces (transposed for 'v1'). */
export function pixelShuffleGridShape(grid: GridShape, options: PixelShuffleOptions = {}): GridShape {
  const factor = Math.round(1 / (options.scale ?? 0.5));
  const merged = mergedGridShape(grid, { factor, oddGrid: options.oddGrid });
  return (options.version ?? 'v2') === 'v2' ? merged : { rows: merged.cols, cols: merged.rows };
}
