/**
 * The Fuyu path (Bavishi et al. 2023, "Fuyu-8B: A Multimodal Architecture for AI Agents"): no image encoder.
 * The normalized image is cut into patches, each patch flattened and linearly projected to the model width,
 * and a learned row-break (`<image-newline>`) embedding follows every row of patches, so the decoder knows
 * where a row ends and any resolution or aspect ratio works. Features: [rows * (cols + 1), D].
 *
 * Patch vector order: row-major inside the patch, channels last, i.e. index (py * patch + px) * C + c. This is
 * the order of Fuyu's `patchify_image` (unfold over height and width, then channels moved last), so Fuyu's
 * `vision_embed_tokens` weight [D, patch*patch*C] loads transposed, without reordering.
 * Padding: images whose sides are not multiples of the patch are padded at the bottom and right (Fuyu pads
 * the same sides), with a constant in normalized units.
 * Row break: Fuyu itself embeds its `|NEWLINE|` text token with the LLM's embedding table; here it is a
 * parameter of this module (`row_break`), which an importer can fill with that embedding row.
 */
import * as tf from '@tensorflow/tfjs';
import { Linear, Module, init } from '@chimera/core';
import type { GridShape } from './merge';

/** Patches along each side after padding the image up to a multiple of `patchSize`. */
export function rawPatchGrid(height: number, width: number, patchSize: number): GridShape {
  if (!Number.isInteger(patchSize) || patchSize < 1) {
    throw new Error(`rawPatchGrid: patchSize must be a positive integer, got ${patchSize}`);
  }
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1) {
    throw new Error(`rawPatchGrid: image size must be positive integers, got ${width}x${height} (width x height)`);
  }
  return { rows: Math.ceil(height / patchSize), cols: Math.ceil(width / patchSize) };
}

/** Pads [H, W, C] at the bottom and right with `value` so both sides are multiples of `patchSize`. */
export function padToPatchMultiple(image: tf.Tensor3D, patchSize: number, value = 0): tf.Tensor3D {
  const [height, width] = image.shape;
  const grid = rawPatchGrid(height, width, patchSize);
  const padRows = grid.rows * patchSize - height;
  const padCols = grid.cols * patchSize - width;
  if (padRows === 0 && padCols === 0) return tf.clone(image);
  return tf.pad(image, [[0, padRows], [0, padCols], [0, 0]], value);
}

/**
 * [H, W, C] (sides multiples of patchSize) -> [rows * cols, patch * patch * C], patches row-major, each patch
 * flattened (py, px, c). One rank-4 transpose: [rows, p, cols, p*C] -> [rows, cols, p, p*C].
 */
export function extractPatches(image: tf.Tensor3D, patchSize: number): tf.Tensor2D {
  const [height, width, channels] = image.shape;
  if (height % patchSize !== 0 || width % patchSize !== 0) {
    throw new Error(
      `extractPatches: a ${width}x${height} image (width x height) is not a multiple of the ${patchSize}-pixel patch; ` +
        `pad it first with padToPatchMultiple`,
    );
  }
  const rows = height / patchSize;
  const cols = width / patchSize;
  return tf.tidy(() => {
    const split = tf.reshape(image, [rows, patchSize, cols, patchSize * channels]);
    const patches = tf.transpose(split, [0, 2, 1, 3]); // [rows, cols, p, p*C]
    return tf.reshape(patches, [rows * cols, patchSize * patchSize * channels]) as tf.Tensor2D;
  });
}

/** Options of {@link RawPatchEmbedding}. */
export interface RawPatchEmbeddingOptions {
  /** Patch side in pixels (Fuyu: 30). */
  patchSize: number;
  /** Model width D. */
  dim: number;
  /** Image channels (default 3). */
  channels?: number;
  /** Add the row-break embedding after every row (default true). */
  rowBreaks?: boolean;
}

/** What {@link RawPatchEmbedding.forward} returns; the caller owns `features`. */
export interface RawPatchOutput {
  /** [rows * (cols + 1), D] with row breaks, [rows * cols, D] without. */
  features: tf.Tensor2D;
  /** The patch grid (rows x cols of patches, row breaks not counted). */
  patchGrid: GridShape;
}

/** Fuyu's encoder-free image embedding: a Linear over raw patches, plus the learned row break. */
export class RawPatchEmbedding extends Module {
  /** Patch side in pixels. */
  readonly patchSize: number;
  /** Image channels. */
  readonly channels: number;
  /** Model width D. */
  readonly dim: number;
  /** Whether a row-break embedding follows every row. */
  readonly rowBreaks: boolean;
  /** The patch projection, [patch*patch*C, D] (HF Fuyu: `vision_embed_tokens`). */
  readonly proj: Linear;
  /** The `<image-newline>` embedding [D], or null without row breaks. */
  readonly rowBreak: tf.Variable | null;

  constructor(options: RawPatchEmbeddingOptions) {
    super();
    this.patchSize = options.patchSize;
    this.channels = options.channels ?? 3;
    this.dim = options.dim;
    this.rowBreaks = options.rowBreaks ?? true;
    this.proj = this.addModule('proj', new Linear(this.patchSize * this.patchSize * this.channels, this.dim));
    this.rowBreak = this.rowBreaks
      ? this.addParameter('row_break', init.normal([this.dim], 0.02))
      : null;
  }

  /** Tokens an image of this padded patch grid becomes. */
  tokenCount(grid: GridShape): number {
    return grid.rows * (grid.cols + (this.rowBreaks ? 1 : 0));
  }

  /** pixels [H, W, C], sides multiples of patchSize (pad with padToPatchMultiple) -> features and grid. */
  forward(pixels: tf.Tensor3D): RawPatchOutput {
    const [height, width, channels] = pixels.shape;
    if (channels !== this.channels) {
      throw new Error(`RawPatchEmbedding: expected ${this.channels} channels, got image of shape [${pixels.shape}]`);
    }
    const patchGrid = { rows: height / this.patchSize, cols: width / this.patchSize };
    const features = tf.tidy(() => {
      const embedded = this.proj.forward(extractPatches(pixels, this.patchSize)); // [rows*cols, D]
      if (!this.rowBreak) return embedded as tf.Tensor2D;
      const grid = tf.reshape(embedded, [patchGrid.rows, patchGrid.cols, this.dim]);
      const breaks = tf.tile(tf.reshape(this.rowBreak, [1, 1, this.dim]), [patchGrid.rows, 1, 1]); // [rows, 1, D]
      const withBreaks = tf.concat([grid, breaks], 1); // [rows, cols + 1, D]
      return tf.reshape(withBreaks, [patchGrid.rows * (patchGrid.cols + 1), this.dim]) as tf.Tensor2D;
    });
    return { features, patchGrid };
  }
}
