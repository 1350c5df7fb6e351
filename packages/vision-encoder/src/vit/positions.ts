/**
 * Position information for ViT tokens. Learned absolute embeddings (Dosovitskiy et al. 2021) trained on one
 * square grid are resized to other grids with bicubic interpolation, exactly as HF's `interpolate_pos_encoding`
 * does (PyTorch `F.interpolate(mode='bicubic', align_corners=False)`, Keys 1981 cubic kernel with a = -0.75),
 * with the CLS position kept as is. The alternative is 2-D RoPE over (row, col) (Su et al. 2021 applied per
 * axis, as in Qwen2-VL's vision tower), which needs no interpolation at any size.
 */
import * as tf from '@tensorflow/tfjs';
import { Module, RotaryEmbedding, init, type RotaryTables } from '@chimera/core';
import type { PatchGrid } from './patch-embedding';

/** PyTorch's bicubic coefficient (upsample_bicubic2d). */
const CUBIC_A = -0.75;

function cubicNear(x: number): number {
  return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1; // |x| <= 1
}

function cubicFar(x: number): number {
  return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A; // 1 < |x| < 2
}

/**
 * The [outSize, inSize] matrix of 1-D bicubic resampling with align_corners=False, as PyTorch computes it: the
 * source coordinate (dst + 0.5) * in/out - 0.5 is not clamped, its four neighbours are clamped to the edge.
 * Identity when the sizes match. Resizing a grid is this matrix applied along rows, then along columns.
 */
export function bicubicResizeMatrix(inSize: number, outSize: number): Float32Array {
  const matrix = new Float32Array(outSize * inSize);
  const scale = inSize / outSize;
  for (let dst = 0; dst < outSize; dst++) {
    const src = (dst + 0.5) * scale - 0.5;
    const base = Math.floor(src);
    const t = src - base;
    const weights = [cubicFar(t + 1), cubicNear(t), cubicNear(1 - t), cubicFar(2 - t)];
    for (let k = 0; k < 4; k++) {
      const index = Math.min(Math.max(base - 1 + k, 0), inSize - 1);
      matrix[dst * inSize + index] += weights[k]!;
    }
  }
  return matrix;
}

/**
 * Bicubic resize of a grid of vectors [inRows, inCols, D] -> [rows, cols, D] (differentiable: two matMuls).
 * Matches `F.interpolate(x.permute(2, 0, 1)[None], (rows, cols), mode='bicubic', align_corners=False)`.
 */
export function resizeGridBicubic(grid: tf.Tensor3D, rows: number, cols: number): tf.Tensor3D {
  return tf.tidy(() => {
    const [inRows, inCols, dim] = grid.shape;
    if (inRows === rows && inCols === cols) return tf.clone(grid);
    const rowMatrix = tf.tensor2d(bicubicResizeMatrix(inRows, rows), [rows, inRows]);
    const colMatrix = tf.tensor2d(bicubicResizeMatrix(inCols, cols), [cols, inCols]);
    const alongRows = tf.matMul(rowMatrix, tf.reshape(grid, [inRows, inCols * dim]) as tf.Tensor2D); // [rows, inCols*D]
    const colsFirst = tf.reshape(tf.transpose(tf.reshape(alongRows, [rows, inCols, dim]), [1, 0, 2]), [inCols, rows * dim]);
    const resized = tf.matMul(colMatrix, colsFirst as tf.Tensor2D); // [cols, rows*D]
    return tf.transpose(tf.reshape(resized, [cols, rows, dim]), [1, 0, 2]) as tf.Tensor3D;
  });
}

/**
 * One learned vector per position: [CLS?] + gridSize^2 patches, row-major (HF's `position_embedding.weight`,
 * CLS first when present). `forward(grid)` returns [1, (1 +) rows*cols, D] for any grid.
 */
export class LearnedPositions extends Module {
  /** Side of the square grid the positions were trained for. */
  readonly gridSize: number;
  /** Whether the first vector belongs to the CLS token. */
  readonly hasClsPosition: boolean;
  /** Width D. */
  readonly dim: number;
  /** The vectors [(1 +) gridSize^2, D]. */
  readonly weight: tf.Variable; // [(1 +) gridSize^2, D]

  constructor(gridSize: number, dim: number, options: { clsPosition: boolean }) {
    super();
    this.gridSize = gridSize;
    this.dim = dim;
    this.hasClsPosition = options.clsPosition;
    const count = gridSize * gridSize + (options.clsPosition ? 1 : 0);
    this.weight = this.addParameter('weight', init.normal([count, dim], 0.02));
  }

  /**
   * Positions [1, (1 +) rows*cols, D] for `grid`, bicubic-resized when it differs from the trained grid. The caller
   * owns the result.
   */
  forward(grid: PatchGrid): tf.Tensor3D {
    return tf.tidy(() => {
      const cls = this.hasClsPosition ? 1 : 0;
      const patches = tf.slice(this.weight, [cls, 0], [-1, -1]);
      const trained = tf.reshape(patches, [this.gridSize, this.gridSize, this.dim]) as tf.Tensor3D;
      const resized = tf.reshape(resizeGridBicubic(trained, grid.rows, grid.cols), [grid.rows * grid.cols, this.dim]);
      const all = cls ? tf.concat([tf.slice(this.weight, [0, 0], [1, -1]), resized], 0) : resized;
      return tf.expandDims(all, 0) as tf.Tensor3D;
    });
  }
}

/**
 * 2-D rotary positions: the first quarter-pairs of each head's channels rotate with the row, the rest with the
 * column (core's RotaryEmbedding, sections [Dh/4, Dh/4], ladder 'per-axis'). A CLS token gets position (0, 0),
 * whose rotation is the identity: it is effectively unrotated.
 */
export class Rope2dPositions {
  /** The 2-D rotary embedding (row and column axes). */
  readonly rotary: RotaryEmbedding;

  constructor(headDim: number, theta: number) {
    this.rotary = new RotaryEmbedding({ headDim, theta, sections: [headDim / 4, headDim / 4], ladder: 'per-axis' });
  }

  /** cos/sin [B, T, headDim] for `batch` images of `grid`, T = (1 +) rows * cols. */
  tables(batch: number, grid: PatchGrid, clsToken: boolean): RotaryTables {
    return tf.tidy(() => {
      const positions = gridPositions(grid, clsToken); // [2, T]
      const length = positions.shape[1]!;
      const batched = tf.broadcastTo(tf.expandDims(positions, 1), [2, batch, length]);
      return this.rotary.forward(batched);
    });
  }
}

/** int32 [2, T]: (row, col) of each token in row-major order, preceded by (0, 0) for a CLS token. */
export function gridPositions(grid: PatchGrid, clsToken: boolean): tf.Tensor2D {
  const offset = clsToken ? 1 : 0;
  const length = offset + grid.rows * grid.cols;
  const data = new Int32Array(2 * length);
  for (let r = 0; r < grid.rows; r++) {
    for (let c = 0; c < grid.cols; c++) {
      const t = offset + r * grid.cols + c;
      data[t] = r;
      data[length + t] = c;
    }
  }
  return tf.tensor2d(data, [2, length], 'int32');
}
