/**
 * The image modality's discrete path over a VQModel (Chameleon's and Janus's image tokens): `prepare` scales RGB
 * bytes to [-1, 1], `tokenize` gives the codes of each item row by row, `lookup` their code vectors, `detokenize`
 * decodes codes back to RGB bytes. The code grid follows from each item's size and the model's downsampling;
 * `latentGrid` is the grid of the size generation produces (`imageSize`).
 */
import * as tf from '@tensorflow/tfjs';
import { ModalityModule, type DiscreteCodec, type MediaGrid, type Modality, type ModalityPath } from '@chimera/core';
import type { VQModel } from '../model/vq-model';

/** RGB bytes, row-major, 3 per pixel (the shape of @chimera/vision-encoder's RgbImage). */
export interface RgbPixels {
  /** Row-major RGB bytes. */
  data: Uint8Array;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
}

/** A prepared image: pixels in [-1, 1], HWC. */
export interface VQImageItem {
  /** HWC values in [-1, 1]. */
  pixels: Float32Array;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
}

/** Options of {@link vqImageModality}. */
export interface VQImageModalityOptions {
  /** Registry name and parameter prefix (default 'image'). */
  name?: string;
  /** Size of generated images: a side, or [height, width] (default 32). Sets `latentGrid` and `detokenize`. */
  imageSize?: number | readonly [number, number];
}

/** The plugin {@link vqImageModality} returns. */
export type VQImageModality = Modality<RgbPixels, VQImageItem, RgbPixels> & {
  /** The discrete path (always present). */
  readonly discrete: DiscreteCodec<VQImageItem, RgbPixels>;
  /** The tokenizer as the `tokenizer` role. */
  readonly module: ModalityModule;
  /** The VQModel it wraps. */
  readonly tokenizer: VQModel;
};

/** The image modality's discrete path over `model` (see the file comment). */
export function vqImageModality(model: VQModel, options: VQImageModalityOptions = {}): VQImageModality {
  const name = options.name ?? 'image';
  const [height, width] = typeof options.imageSize === 'number' || options.imageSize === undefined ? [options.imageSize ?? 32, options.imageSize ?? 32] : options.imageSize;
  const [rows, cols] = model.gridFor(height, width);
  const gridOf = (item: VQImageItem): MediaGrid => {
    const [r, c] = model.gridFor(item.height, item.width);
    return { rows: r, cols: c };
  };

  const discrete: DiscreteCodec<VQImageItem, RgbPixels> = {
    codebookSize: model.codebookSize,
    embeddingDim: model.config.codebookDim,
    latentGrid: [rows, cols],
    tokenize(items: VQImageItem[]): tf.Tensor {
      if (items.length === 0) throw new Error(`${name}.tokenize: no items; pass at least one prepared image`);
      const { width: w, height: h } = items[0]!;
      const other = items.findIndex((item) => item.width !== w || item.height !== h);
      if (other >= 0) {
        throw new Error(`${name}.tokenize: items must share one size to batch (item 0 is ${w}x${h}, item ${other} is ${items[other]!.width}x${items[other]!.height}); tokenize them separately`);
      }
      return tf.tidy(() => {
        const batch = tf.tensor4d(concat(items.map((i) => i.pixels)), [items.length, h, w, 3]);
        const codes = model.encode(batch); // [items, rows, cols]
        return tf.reshape(codes, [items.length, -1]);
      });
    },
    lookup(ids: tf.Tensor): tf.Tensor {
      return model.quantize.lookup(ids);
    },
    detokenize(ids: tf.Tensor): RgbPixels[] {
      if (ids.rank !== 2 || ids.shape[1] !== rows * cols) {
        throw new Error(`${name}.detokenize: ids must be [items, ${rows * cols}] (a ${rows}x${cols} grid for ${width}x${height} images), got [${ids.shape}]`);
      }
      const decoded = tf.tidy(() => {
        const images = model.decode(tf.reshape(ids, [ids.shape[0]!, rows, cols]));
        return tf.round(tf.mul(tf.add(tf.clipByValue(images, -1, 1), 1), 127.5));
      });
      const values = decoded.dataSync();
      decoded.dispose();
      const size = width * height * 3;
      return Array.from({ length: ids.shape[0]! }, (_, i) => ({ data: Uint8Array.from(values.subarray(i * size, (i + 1) * size)), width, height }));
    },
  };

  return {
    name,
    tokenizer: model,
    module: new ModalityModule({ tokenizer: model }),
    discrete,
    prepare(raw: RgbPixels): VQImageItem {
      const { data, width: w, height: h } = raw ?? ({} as RgbPixels);
      if (!(data instanceof Uint8Array) || !Number.isInteger(w) || !Number.isInteger(h) || data.length !== w * h * 3) {
        throw new Error(`${name}.prepare: expected { data: Uint8Array of width * height * 3 RGB bytes, width, height }, got ${describe(raw)}`);
      }
      model.gridFor(h, w);
      const pixels = new Float32Array(data.length);
      for (let i = 0; i < data.length; i++) pixels[i] = data[i]! / 127.5 - 1;
      return { pixels, width: w, height: h };
    },
    tokensFor(item: VQImageItem, path: ModalityPath = 'discrete'): number {
      if (path !== 'discrete') throw new Error(`${name}: this plugin has only the discrete path, asked for '${path}'`);
      const grid = gridOf(item);
      return grid.rows * grid.cols;
    },
    gridFor(item: VQImageItem): MediaGrid {
      return gridOf(item);
    },
  };
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

function describe(raw: unknown): string {
  if (raw === null || typeof raw !== 'object') return JSON.stringify(raw);
  const r = raw as Partial<RgbPixels>;
  const data = r.data as unknown;
  const kind = data instanceof Uint8Array ? `Uint8Array(${data.length})` : data === undefined ? 'no data' : Object.prototype.toString.call(data);
  return `{ data: ${kind}, width: ${String(r.width)}, height: ${String(r.height)} }`;
}
