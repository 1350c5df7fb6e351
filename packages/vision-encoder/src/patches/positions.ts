/**
 * 2-D positions of an image's tokens: (row, col) per token in the order the features are laid out, for 2-D
 * RoPE inside a vision tower (Qwen2-VL's ViT, positions [2, B, T] as core's RotaryEmbedding takes them) and
 * for checking the grid core's packer turns into M-RoPE (t, h, w) ids (Wang et al. 2024, "Qwen2-VL").
 *
 * Layout: frame-major, then row, then column, matching core's MediaGrid. With row breaks (Fuyu) a row's break
 * token sits at column `cols`, one past the row's last patch, so the grid to report is {rows, cols + 1}.
 */
import * as tf from '@tensorflow/tfjs';
import type { MediaGrid } from '@chimera/core';

/** (frame, row, col) of every token of a grid, as parallel arrays. */
export interface TokenPositions {
  /** Row index of every token. */
  rows: Int32Array;
  /** Column index of every token. */
  cols: Int32Array;
  /** Frame (tile/view) index of every token. */
  frames: Int32Array;
}

/** (frame, row, col) of every cell of `grid`, frame-major then row-major. */
export function tokenPositions(grid: MediaGrid): TokenPositions {
  const frames = grid.frames ?? 1;
  for (const [name, value] of [['rows', grid.rows], ['cols', grid.cols], ['frames', frames]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`tokenPositions: grid ${name} must be a positive integer, got ${value}`);
    }
  }
  const count = frames * grid.rows * grid.cols;
  const out: TokenPositions = { rows: new Int32Array(count), cols: new Int32Array(count), frames: new Int32Array(count) };
  let i = 0;
  for (let f = 0; f < frames; f++) {
    for (let r = 0; r < grid.rows; r++) {
      for (let c = 0; c < grid.cols; c++, i++) {
        out.frames[i] = f;
        out.rows[i] = r;
        out.cols[i] = c;
      }
    }
  }
  return out;
}

/**
 * (row, col) ids as int32 [2, batch, rows*cols] for a 2-D RotaryEmbedding (sections [D/4, D/4], rows first),
 * the same positions repeated for every image of a batch of equal grids.
 */
export function rotaryPositions2d(grid: { rows: number; cols: number }, batch = 1): tf.Tensor3D {
  const { rows, cols } = tokenPositions({ rows: grid.rows, cols: grid.cols });
  const n = rows.length;
  const data = new Int32Array(2 * batch * n);
  for (let b = 0; b < batch; b++) {
    data.set(rows, b * n);
    data.set(cols, (batch + b) * n);
  }
  return tf.tensor3d(data, [2, batch, n], 'int32');
}

/** The grid that covers a patch grid plus one row-break token per row (Fuyu). */
export function gridWithRowBreaks(patchGrid: { rows: number; cols: number }): MediaGrid {
  return { rows: patchGrid.rows, cols: patchGrid.cols + 1 };
}
