/**
 * A toy modality that exercises every path of the contract. An item is a grid of cells with CELL_WIDTH
 * numbers each: continuous in is a Linear over the cells (one feature per cell, with the grid); discrete is
 * a quantisation of each cell's mean to an 8-level codebook with a learned embedding; continuous out treats
 * a 2x2 grid of cells as the latents themselves.
 */
import * as tf from '@tensorflow/tfjs';
import { Linear } from '../../src/nn/linear';
import { Module } from '../../src/nn/module';
import {
  ModalityModule,
  gridSize,
  type EncodeOptions,
  type EncodedFeatures,
  type MediaGrid,
  type Modality,
  type ModalityPath,
} from '../../src/modality/contract';

export const CELL_WIDTH = 2;
export const TOY_CODEBOOK_SIZE = 8;
export const TOY_OUT_GRID: MediaGrid = { rows: 2, cols: 2 };

export interface ToyRaw {
  rows: number;
  cols: number;
  /** rows * cols * CELL_WIDTH numbers in [0, 1), cell by cell. */
  values: number[];
}

export interface ToyItem {
  rows: number;
  cols: number;
  cells: Float32Array;
}

class ToyCodebook extends Module {
  readonly weight: tf.Variable;
  constructor(size: number, dim: number) {
    super();
    const init = tf.tidy(() => tf.add(tf.reshape(tf.range(0, size * dim), [size, dim]), 1));
    this.weight = this.addParameter('weight', tf.tidy(() => tf.div(init, size * dim)));
    init.dispose();
  }
}

export interface ToyModalityOptions {
  name?: string;
  /** Feature width of encode (default 4). */
  featureDim?: number;
  /** Width of code embeddings (default featureDim). */
  embeddingDim?: number;
}

export type ToyModality = Modality<ToyRaw, ToyItem, ToyRaw> & {
  readonly encoder: Linear;
  readonly codebook: ToyCodebook;
  readonly module: ModalityModule;
};

export function quantise(value: number): number {
  return Math.min(TOY_CODEBOOK_SIZE - 1, Math.max(0, Math.floor(value * TOY_CODEBOOK_SIZE)));
}

export function createToyModality(options: ToyModalityOptions = {}): ToyModality {
  const name = options.name ?? 'toy';
  const featureDim = options.featureDim ?? 4;
  const embeddingDim = options.embeddingDim ?? featureDim;
  const encoder = new Linear(CELL_WIDTH, featureDim);
  const codebook = new ToyCodebook(TOY_CODEBOOK_SIZE, embeddingDim);
  const module = new ModalityModule({ encoder, codebook });

  const cellsOf = (item: ToyItem): tf.Tensor2D => tf.tensor2d(item.cells, [item.rows * item.cols, CELL_WIDTH]);
  const fixedGrid = (item: ToyItem, path: string): void => {
    if (item.rows !== TOY_OUT_GRID.rows || item.cols !== TOY_OUT_GRID.cols) {
      throw new Error(`toy ${path} needs ${TOY_OUT_GRID.rows}x${TOY_OUT_GRID.cols} items, got ${item.rows}x${item.cols}`);
    }
  };
  const toRaw = (values: ArrayLike<number>): ToyRaw => ({ ...TOY_OUT_GRID, values: Array.from(values) });

  return {
    name,
    encoder,
    codebook,
    module,
    prepare(raw: ToyRaw): ToyItem {
      if (raw.values.length !== raw.rows * raw.cols * CELL_WIDTH) {
        throw new Error(`toy: expected ${raw.rows * raw.cols * CELL_WIDTH} values, got ${raw.values.length}`);
      }
      return { rows: raw.rows, cols: raw.cols, cells: Float32Array.from(raw.values) };
    },
    tokensFor(item: ToyItem, path: ModalityPath = 'continuousIn'): number {
      if (path === 'continuousOut') return gridSize(TOY_OUT_GRID);
      return item.rows * item.cols;
    },
    gridFor(item: ToyItem, path: ModalityPath = 'continuousIn'): MediaGrid {
      return path === 'continuousIn' ? { rows: item.rows, cols: item.cols } : { ...TOY_OUT_GRID };
    },
    continuousIn: {
      featureDim,
      encode(items: ToyItem[], encodeOptions: EncodeOptions = {}): EncodedFeatures {
        const inputs = items.map(cellsOf);
        const features = inputs.map((x) => encoder.forward(x));
        const taps: Record<number, tf.Tensor[]> = {};
        for (const layer of encodeOptions.taps ?? []) taps[layer] = layer === 0 ? inputs.map((x) => tf.clone(x)) : features.map((f) => tf.clone(f));
        tf.dispose(inputs);
        return {
          features,
          tokensPerItem: items.map((item) => item.rows * item.cols),
          grids: items.map((item) => ({ rows: item.rows, cols: item.cols })),
          ...(encodeOptions.taps ? { taps } : {}),
        };
      },
    },
    discrete: {
      codebookSize: TOY_CODEBOOK_SIZE,
      embeddingDim,
      latentGrid: [TOY_OUT_GRID.rows, TOY_OUT_GRID.cols],
      tokenize(items: ToyItem[]): tf.Tensor {
        const codes = items.flatMap((item) => {
          fixedGrid(item, 'discrete');
          return Array.from({ length: item.rows * item.cols }, (_, c) =>
            quantise((item.cells[c * CELL_WIDTH]! + item.cells[c * CELL_WIDTH + 1]!) / 2),
          );
        });
        return tf.tensor2d(codes, [items.length, gridSize(TOY_OUT_GRID)], 'int32');
      },
      lookup(ids: tf.Tensor): tf.Tensor {
        return tf.tidy(() => tf.gather(codebook.weight, tf.cast(ids, 'int32')));
      },
      detokenize(ids: tf.Tensor): ToyRaw[] {
        const values = ids.arraySync() as number[][];
        return values.map((row) => toRaw(row.flatMap((code) => [(code + 0.5) / TOY_CODEBOOK_SIZE, (code + 0.5) / TOY_CODEBOOK_SIZE])));
      },
    },
    continuousOut: {
      latentShape: [gridSize(TOY_OUT_GRID), CELL_WIDTH],
      latentGrid: { ...TOY_OUT_GRID },
      decodeLatents(latents: tf.Tensor): ToyRaw[] {
        const n = latents.shape[0]!;
        const data = latents.dataSync();
        const per = gridSize(TOY_OUT_GRID) * CELL_WIDTH;
        return Array.from({ length: n }, (_, i) => toRaw(data.slice(i * per, (i + 1) * per)));
      },
    },
  };
}

/** A raw toy item with deterministic values in [0, 1). */
export function toyRaw(rows: number, cols: number, seed = 1): ToyRaw {
  const values = Array.from({ length: rows * cols * CELL_WIDTH }, (_, i) => ((Math.sin(seed * 97 + i * 13) + 1) / 2) * 0.999);
  return { rows, cols, values };
}
